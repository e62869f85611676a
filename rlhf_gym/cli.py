"""The ``rlhf-gym`` command line.

- ``rlhf-gym envs``: the registered environments and their specs;
- ``rlhf-gym build-assets summarize``: rebuild a task's shipped assets from seeds;
- ``rlhf-gym train --agent NAME ...``: train an agent (flags from its config dataclass).

Each subcommand is a plain function or dataclass whose signature tyro turns into flags.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import gymnasium as gym
import tyro

from rlhf_gym.registration import SUITE


def envs(details: bool = False) -> None:
    """List the registered environments and their specs.

    Args:
        details: also build each env once and print its spaces and default settings.
    """
    for suite_env in SUITE:
        spec = gym.spec(suite_env.env_id)
        print(f"{spec.id}\n  {suite_env.summary}")
        print(f"  entry_point={spec.entry_point}\n  vector_entry_point={spec.vector_entry_point}")
        print(f"  max_episode_steps={spec.max_episode_steps} (episodes end at max_new_tokens)")
        if details:
            env = gym.make(spec.id).unwrapped
            core = env.vector_env
            print(f"  observation_space={env.observation_space}\n  action_space={env.action_space}")
            print(
                f"  max_prompt_tokens={core.max_prompt_tokens} max_new_tokens={core.max_new_tokens} "
                f"vocab_size={core.vocab_size} prompts={len(core.prompt_source)}"
            )
            env.close()


TRAIN_USAGE = """usage: rlhf-gym train --agent NAME [--env ID] [--total-steps N] [--seed S] [--out DIR] [agent flags]

Train an agent of rlhf_gym.agents; `rlhf-gym train --agent NAME --help` lists its flags.
Agents: {agents}"""


def train(argv: Sequence[str]) -> None:
    """``rlhf-gym train --agent NAME ...``: the agent's config dataclass becomes its flags."""
    from rlhf_gym.agents import AGENTS  # the CLI reaches agents by name only

    args = list(argv)
    names = ", ".join(f"{name} ({entry.summary})" for name, entry in AGENTS.items())
    if "--agent" not in args or args.index("--agent") + 1 >= len(args):
        print(TRAIN_USAGE.format(agents=names))
        raise SystemExit(0 if {"-h", "--help"} & set(args) else 2)
    at = args.index("--agent")
    name = args[at + 1]
    del args[at : at + 2]
    if name not in AGENTS:
        raise SystemExit(f"unknown agent {name!r}; choose one of: {', '.join(AGENTS)}")
    config_class, train_fn = AGENTS[name].load()
    config = tyro.cli(config_class, args=args, prog=f"rlhf-gym train --agent {name}")
    train_fn(config)


def build_assets(
    task: tyro.conf.Positional[str],
    toy: bool = False,
    out: str | None = None,
    reuse_policy: str | None = None,
    comparison_posts: int | None = None,
    preference_members: int | None = None,
    device: str = "cpu",
) -> None:
    """Rebuild a task's shipped assets from seeds (tokenizer, SFT policy, preference model, card).

    Args:
        task: the task name (``summarize``).
        toy: a seconds-scale build with tiny sizes (for tests and trying the pipeline).
        out: write the assets here instead of into the installed package.
        reuse_policy: copy the tokenizer and SFT policy of this earlier build's folder
            instead of retraining them (to iterate on the preference-model stage).
        comparison_posts: posts whose candidates are paired and labelled for the
            preference model (default: the recipe's; more posts, a better model and a
            longer build).
        preference_members: train this many preference models, differing in minibatch
            order, and ship them as one ensemble (default: the recipe's; each member costs
            a full training run).
        device: where the models train and sample (``cpu``, ``cuda``, ``cuda:1``, ...).
    """
    if task != "summarize":
        raise SystemExit(f"unknown task {task!r}; tasks with assets: summarize")
    from pathlib import Path

    from rlhf_gym.envs.summarize.assets import ASSETS_DIR
    from rlhf_gym.envs.summarize.build import BuildConfig
    from rlhf_gym.envs.summarize.build import build_assets as build

    config = BuildConfig.toy() if toy else BuildConfig()
    config.device = _checked_device(device)
    if comparison_posts is not None:
        if comparison_posts < 1:
            raise SystemExit(f"--comparison-posts must be >= 1, got {comparison_posts}")
        config.comparison_posts = comparison_posts
    if preference_members is not None:
        if preference_members < 1:
            raise SystemExit(f"--preference-members must be >= 1, got {preference_members}")
        config.preference_members = preference_members
    build(
        config,
        Path(out) if out else ASSETS_DIR,
        reuse_policy=Path(reuse_policy) if reuse_policy else None,
    )


def _checked_device(name: str) -> str:
    """``name`` if torch can run on it here, else a SystemExit saying why."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise SystemExit(f"--device {name!r} is not a torch device ({error}); e.g. cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name!r}, but torch sees no CUDA GPU on this machine")
    return name


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``rlhf-gym`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "train":
        train(args[1:])
        return
    tyro.extras.subcommand_cli_from_dict(
        {"envs": envs, "build-assets": build_assets},
        prog="rlhf-gym",
        description="rlhf-gym: token-level Gymnasium environments for RLHF on language.",
        args=args,
    )


if __name__ == "__main__":
    main()

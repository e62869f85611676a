"""The ``rlhf-gym`` command line.

- ``rlhf-gym envs``: the registered environments and their specs;
- ``rlhf-gym train --agent NAME ...``: train an agent (flags from its config dataclass);
- ``rlhf-gym build-assets TASK``: rebuild a task's shipped assets from seeds.

Each subcommand is a plain function or dataclass whose signature tyro turns into flags;
``--help`` works at every level. The core names no task: ``build-assets`` finds the task's
recipe through `rlhf_gym.get_task`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any, Union

import gymnasium as gym
import tyro

from rlhf_gym.registration import SUITE, get_task


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


def train() -> None:
    """Train an agent: `rlhf-gym train --agent NAME [flags]`; `rlhf-gym train --help` lists the agents."""
    raise AssertionError("main() dispatches `train` to train_cli")  # listed here for `rlhf-gym --help`


def train_cli(argv: Sequence[str]) -> None:
    """``rlhf-gym train --agent NAME ...``: each agent is a tyro subcommand built from its
    config dataclass; ``--agent NAME``, ``--agent=NAME`` and a bare ``NAME`` all choose it."""
    from rlhf_gym.agents import AGENTS  # the CLI reaches agents by name only

    args, name = _agent_first(list(argv), AGENTS)
    choices = []
    for agent, entry in AGENTS.items():
        factory, _ = entry.load()
        choices.append(Annotated[entry.config_type(), tyro.conf.subcommand(agent, default=factory(), description=entry.summary)])
    config = tyro.cli(
        Union[tuple(choices)],  # noqa: UP007  (a runtime union of the agents' config types)
        args=args,
        prog="rlhf-gym train",
        description="Train an agent on an env. Choose it with --agent NAME; "
        "`rlhf-gym train --agent NAME --help` lists its flags.",
    )
    entry = AGENTS[name]  # tyro parsed the subcommand, so the name is a known agent
    for field, value in entry.defaults:
        if field != "out" and getattr(config, field) != value:
            raise SystemExit(f"--{field.replace('_', '-')} {getattr(config, field)} conflicts with --agent {name} ({field}={value!r})")
    entry.load()[1](config)


def _agent_first(args: list[str], agents: Any) -> tuple[list[str], str | None]:
    """Move ``--agent NAME`` or ``--agent=NAME`` to the front as tyro's subcommand word.

    Returns the rewritten arguments and the agent name (None when none was given: tyro
    then prints the usage, or the help with ``--help``).
    """
    for i, arg in enumerate(args):
        if arg == "--agent":
            if i + 1 >= len(args):
                raise SystemExit(f"--agent needs a name; choose one of: {', '.join(agents)}")
            name = args[i + 1]
            rest = args[:i] + args[i + 2 :]
            break
        if arg.startswith("--agent="):
            name = arg.split("=", 1)[1]
            rest = args[:i] + args[i + 1 :]
            break
    else:
        first = next((a for a in args if not a.startswith("-")), None)
        return args, first if first in agents else None
    if name not in agents:
        raise SystemExit(f"unknown agent {name!r}; choose one of: {', '.join(agents)}")
    return [name, *rest], name


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
        task: the task name or env id (``summarize``, ``RLHF-Summarize-v0``).
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
    from pathlib import Path

    from rlhf_gym.env.task import BuildRequest

    try:
        declared = get_task(task)
    except KeyError as error:
        raise SystemExit(error.args[0]) from None
    if declared.build_assets is None or (out is None and declared.assets_dir is None):
        raise SystemExit(f"task {declared.name!r} declares no build recipe")
    for flag, value in (("--comparison-posts", comparison_posts), ("--preference-members", preference_members)):
        if value is not None and value < 1:
            raise SystemExit(f"{flag} must be >= 1, got {value}")
    declared.build_assets(BuildRequest(
        out=Path(out) if out else declared.assets_dir,
        toy=toy,
        device=_checked_device(device),
        reuse_policy=Path(reuse_policy) if reuse_policy else None,
        comparison_posts=comparison_posts,
        preference_members=preference_members,
    ))


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
        train_cli(args[1:])
        return
    tyro.extras.subcommand_cli_from_dict(
        {"envs": envs, "train": train, "build-assets": build_assets},
        prog="rlhf-gym",
        description="rlhf-gym: token-level Gymnasium environments for RLHF on language.",
        args=args,
    )


if __name__ == "__main__":
    main()

"""The ``rlhf-gym`` command line.

- ``rlhf-gym envs``: the registered environments and their specs;
- ``rlhf-gym train --agent NAME ...``: train an agent (flags from its config dataclass);
- ``rlhf-gym evaluate --env ID --policy PATH``: run the env's leaderboard protocol;
- ``rlhf-gym leaderboard {validate,verify,build}``: the leaderboard;
- ``rlhf-gym build-assets TASK``: rebuild a task's shipped assets from seeds (flags: its build config);
- ``rlhf-gym audit ENV``: the headroom audit of a task's shipped SFT policy (docs/audit.md);
- ``rlhf-gym bench [--quick] [--device DEV] [--json FILE]``: every speed comparison, side by side (docs/performance.md).

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

from rlhf_gym.bench.run import DEFAULT_DOC, DEFAULT_ENV, PARTS
from rlhf_gym.registration import SUITE, get_task


def envs(details: bool = False) -> None:
    """List the registered environments, their specs and their cards' headline figures.

    Args:
        details: also build each env once and print its spaces and default settings.
    """
    for suite_env in SUITE:
        spec = gym.spec(suite_env.env_id)
        print(f"{spec.id}\n  {suite_env.summary}")
        print(f"  entry_point={spec.entry_point}\n  vector_entry_point={spec.vector_entry_point}")
        print(f"  max_episode_steps={spec.max_episode_steps} (episodes end at max_new_tokens)")
        task = get_task(suite_env.env_id)
        if task.assets is not None and task.world is not None:  # a world's card: its headline figures
            from rlhf_gym.worlds.card import card_line

            print(f"  {card_line(task.assets.card(), task.temperature)}")
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
    """``rlhf-gym train --agent NAME ...``: the flags are those of the agent's config
    dataclass; ``--agent NAME``, ``--agent=NAME`` and a bare ``NAME`` all choose it.

    Only the chosen agent's module is imported (``--agent ppo`` loads no SB3); without an
    agent, every agent is a tyro subcommand, so ``rlhf-gym train --help`` lists them all.
    A run folder that does not fit the run (`RunFolderError`), a launch that does not fit a
    data-parallel run (`LaunchError`), or a component that cannot be loaded or is refused as
    unsafe (``--reward-model`` with pickled weights or remote code: `MissingArtifactError`,
    `UnsafeCheckpointError`) exits with its one-line message.
    """
    from rlhf_gym.agents import AGENTS  # the CLI reaches agents by name only

    args, name = _agent_first(list(argv), AGENTS)
    if name is None:  # no agent: tyro prints the usage, or the help with --help
        choices = []
        for agent, entry in AGENTS.items():
            factory, _ = entry.load()
            choices.append(Annotated[entry.config_type(), tyro.conf.subcommand(agent, default=factory(), description=entry.summary)])
        tyro.cli(
            Union[tuple(choices)],  # noqa: UP007  (a runtime union of the agents' config types)
            args=args,
            prog="rlhf-gym train",
            description="Train an agent on an env. Choose it with --agent NAME; "
            "`rlhf-gym train --agent NAME --help` lists its flags.",
        )
        raise SystemExit(f"choose an agent with --agent NAME, one of: {', '.join(AGENTS)}")
    entry = AGENTS[name]
    factory, train_agent = entry.load()
    config = tyro.cli(entry.config_type(), default=factory(), args=args[1:], prog=f"rlhf-gym train --agent {name}",
                      description=entry.summary)
    for field, value in entry.defaults:
        if field != "out" and getattr(config, field) != value:
            raise SystemExit(f"--{field.replace('_', '-')} {getattr(config, field)} conflicts with --agent {name} ({field}={value!r})")
    from rlhf_gym.agents.common import RunFolderError  # loaded with the agent already
    from rlhf_gym.agents.distributed import LaunchError
    from rlhf_gym.lm.loading import MissingArtifactError, UnsafeCheckpointError

    try:
        train_agent(config)
    except (RunFolderError, LaunchError, MissingArtifactError, UnsafeCheckpointError) as error:
        raise SystemExit(f"rlhf-gym train: {error}") from None


def _agent_first(args: list[str], agents: Any) -> tuple[list[str], str | None]:
    """Move ``--agent NAME``, ``--agent=NAME`` or a bare ``NAME`` to the front, as one word.

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
        i, first = next(((i, a) for i, a in enumerate(args) if not a.startswith("-")), (0, None))
        if first not in agents:
            return args, None
        name, rest = first, args[:i] + args[i + 1 :]
    if name not in agents:
        raise SystemExit(f"unknown agent {name!r}; choose one of: {', '.join(agents)}")
    return [name, *rest], name


def build_assets() -> None:
    """Rebuild a task's shipped assets from seeds: `rlhf-gym build-assets TASK [--toy] [flags]`;
    the flags are the fields of the task's build config (`rlhf-gym build-assets TASK --help`)."""
    raise AssertionError("main() dispatches `build-assets` to build_assets_cli")  # listed for `rlhf-gym --help`


def build_assets_cli(argv: Sequence[str]) -> None:
    """``rlhf-gym build-assets TASK [--toy] [--out DIR] [--reuse-policy DIR] [--FIELD VALUE ...]``.

    TASK is a task name or env id. The flags are those of the world's
    `rlhf_gym.worlds.build.BuildConfig`, starting from the world's sizes (its toy sizes
    with ``--toy``), as ``train``'s flags are those of an agent's config.
    """
    import argparse
    from pathlib import Path

    from rlhf_gym.worlds.build_config import BuildConfig
    from rlhf_gym.worlds.task import BuildRequest

    args = list(argv)
    if not args or args[0].startswith("-"):
        known = ", ".join(env.task_name for env in SUITE)
        raise SystemExit(f"usage: rlhf-gym build-assets TASK [--toy] [--out DIR] [--reuse-policy DIR] [--help]; "
                         f"TASK is one of: {known}")
    try:
        declared = get_task(args[0])
    except KeyError as error:
        raise SystemExit(error.args[0]) from None
    if declared.world is None:
        if declared.build_assets is None:
            raise SystemExit(f"task {declared.name!r} declares no build recipe")
        if len(args) > 1 or declared.assets_dir is None:
            raise SystemExit(f"task {declared.name!r} is made by hand: its recipe takes no flags and needs an assets_dir")
        declared.build_assets(BuildRequest(out=declared.assets_dir))
        return
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--toy", action="store_true")
    own.add_argument("--out")
    own.add_argument("--reuse-policy")
    chosen, rest = own.parse_known_args(args[1:])
    config = tyro.cli(
        BuildConfig, default=declared.world.build_config(toy=chosen.toy), args=rest,
        prog=f"rlhf-gym build-assets {declared.name} [--toy] [--out DIR] [--reuse-policy DIR]",
        description=(
            f"Rebuild the shipped assets of {declared.env_id} from seeds (tokenizer, SFT policy, preference model, "
            "card). --toy: a seconds-scale build with tiny sizes; --out DIR: write there instead of into the "
            "installed package; --reuse-policy DIR: copy that build's tokenizer and SFT policy instead of retraining "
            "them. The flags below are the build's sizes, starting from the world's (its toy sizes with --toy)."
        ),
    )
    _checked_device(config.device)
    from rlhf_gym.worlds.build import build_assets as run_recipe  # the pipeline loads only to build

    out = Path(chosen.out) if chosen.out else declared.assets_dir
    run_recipe(declared.world, config, out, reuse_policy=Path(chosen.reuse_policy) if chosen.reuse_policy else None)


def audit(
    env: tyro.conf.Positional[Annotated[str, tyro.conf.arg(metavar="ENV")]],
    prompts: int = 512,
    seed: int = 0,
    device: str = "cpu",
    json: str | None = None,
    update_card: bool = False,
    writers: bool = False,
) -> None:
    """Audit an env's headroom: its SFT policy's gold and proxy at T = 0, 0.3, 0.7, 1.0, best-of-{4,16,64} by gold
    and by the proxy with their KL, the references' gold, and its exposed decisions (docs/audit.md). With
    --writers, the design audit instead: the same questions asked of the world's writer mixture, with no model.

    Prints progress, the table and PASS/FAIL per audit target the world declares; the targets are informational
    (exit 0). A missing asset or bad input is one error line.

    Args:
        env: the env id or task name.
        prompts: the valid split's first N prompts (64 samples each at the protocol temperature).
        seed: seeds every sample; the same seed gives the same numbers.
        device: where the policy and the preference model run.
        json: write the audit (every figure, the targets and the wall time) to this JSON file.
        update_card: write the audit into the task's assets card (card.json "audit") and re-render card.md.
        writers: the design audit (rlhf_gym.worlds.design): the world's writers alone, 64 draws per prompt, in
            seconds and before any asset is built.
    """
    import json as json_module
    import time
    from pathlib import Path

    from rlhf_gym.lm.loading import MissingArtifactError
    from rlhf_gym.worlds.audit import render_audit, run_audit
    from rlhf_gym.worlds.card import update_card as write_card

    try:
        task = get_task(env)
    except KeyError as error:
        raise SystemExit(error.args[0]) from None
    if prompts < 1:
        raise SystemExit(f"--prompts must be >= 1, got {prompts}")
    if update_card and (task.world is None or task.assets is None):
        raise SystemExit(f"--update-card: task {task.name!r} has no assets card")
    if json is not None and not Path(json).parent.is_dir():
        raise SystemExit(f"--json {json}: the folder {Path(json).parent} does not exist")
    started = time.time()
    if writers:
        from rlhf_gym.worlds.design import render_writer_audit, writer_audit

        if task.world is None or update_card:
            raise SystemExit("--writers audits a world's writers (no assets involved): it needs a world and no --update-card")
        try:
            figures = writer_audit(task.world, prompts=prompts, seed=seed)
        except (NotImplementedError, ValueError) as error:
            raise SystemExit(f"rlhf-gym audit --writers: {error}") from None
        print("\n".join(render_writer_audit(figures)))
        if json is not None:
            Path(json).write_text(json_module.dumps({**figures, "seconds": round(time.time() - started, 1)}, indent=2))
            print(f"wrote {json}")
        return
    try:
        figures = run_audit(task, prompts=prompts, seed=seed, device=_checked_device(device))
    except (MissingArtifactError, ValueError) as error:
        raise SystemExit(f"rlhf-gym audit: {error}") from None
    seconds = round(time.time() - started, 1)
    print("\n".join(render_audit(figures)))
    for target in figures.get("targets", []):
        print(f"{'PASS' if target['passed'] else 'FAIL'}  {target['target']}: {target['value']} (limit {target['limit']})")
    print(f"audit of {task.env_id} on {prompts} prompts: {seconds} s")
    if json is not None:
        Path(json).write_text(json_module.dumps({**figures, "seconds": seconds}, indent=2))
        print(f"wrote {json}")
    if update_card:
        print(f"wrote the audit into {write_card(task, figures)}/card.json and card.md")


def evaluate(
    env: str,
    policy: list[str],
    seed: list[int] | None = None,
    revision: list[str] | None = None,
    device: str = "cpu",
    threads: int = 2,
    submission: str | None = None,
    agent: str | None = None,
    training_env_steps: int | None = None,
    training_command: str | None = None,
    paper: str | None = None,
    code: str | None = None,
    description: str | None = None,
    hardware: str | None = None,
) -> None:
    """Run an env's leaderboard protocol on policies (one per run) and optionally write a submission.

    Every policy is loaded and checked before the first is evaluated; a problem is one
    ``error:`` line and exit code 2.

    Args:
        env: the env id (its protocol: rlhf_gym.leaderboard.protocol).
        policy: one policy per run: a checkpoint folder, a hub id (with --revision), best-of-N:PATH, or temperature-T:PATH (sampled at T).
        seed: the runs' seeds (default 0, 1, ...): each selects its sampling stream.
        revision: the hub commit of each hub-id policy (one per policy, or one for all); a submission needs 40-hex commits.
        device: where the env and the models run.
        threads: CPU threads for torch (torch.set_num_threads).
        submission: write a leaderboard submission (JSON) here; needs >= 3 runs, --agent and --training-env-steps.
        agent: the submission's agent name, the row's label (not a folder name like final_policy).
        training_env_steps: env steps that trained each policy; 0 (said explicitly) for an untrained one.
        training_command: the command that trained the runs, {seed} for each run's seed (default: summary.json's "command" by each policy).
        paper: a link to the agent's paper.
        code: a link to the agent's code.
        description: a sentence about the agent.
        hardware: what evaluated it (default: the machine and the thread count).
    """
    from rlhf_gym.leaderboard.evaluate import evaluate_main

    evaluate_main(
        env, policy, seed=seed, revision=revision, device=_checked_device(device), threads=threads, submission_path=submission,
        agent=agent, training_env_steps=training_env_steps, training_command=training_command, paper=paper, code=code,
        description=description, hardware=hardware,
    )


def leaderboard() -> None:
    """The leaderboard: `rlhf-gym leaderboard {validate,verify,build} --help`."""
    raise AssertionError("main() dispatches `leaderboard` to leaderboard_cli")  # listed here for `rlhf-gym --help`


def validate(files: tyro.conf.Positional[list[str]]) -> None:
    """Check submission files against the schema and the protocol; exit 1 if any is invalid.

    Args:
        files: the submission JSON files.
    """
    from rlhf_gym.leaderboard.validate import validate_files

    raise SystemExit(validate_files(files))


def verify(
    file: tyro.conf.Positional[str],
    policy: list[str] | None = None,
    runs: list[int] | None = None,
    device: str = "cpu",
    threads: int = 2,
) -> None:
    """Re-run the protocol on a submission's checkpoints; exit 1 if a checkpoint fails or a metric is off beyond its tolerance.

    Every checkpoint is found and loaded before any run is evaluated; local paths are relative to the submission file's
    folder. Prints each run's deviations and tolerances.

    Args:
        file: the submission JSON file.
        policy: each run's policy location, overriding the submission's (one per run, or one template with {seed}).
        runs: verify only these run indices (e.g. --runs 0 2); the output says so.
        device: where the env and the models run.
        threads: CPU threads for torch (torch.set_num_threads).
    """
    from rlhf_gym.leaderboard.verify import verify_main

    raise SystemExit(verify_main(file, policy, device=_checked_device(device), runs=runs, threads=threads))


def build(submissions: str | None = None, out: str | None = None) -> None:
    """Build the table (README.md, between its markers) and the page (index.html) from valid submissions.

    Every submission must pass `validate`: one invalid file stops the build, names the file
    and its first problem, and writes nothing. Prints where it writes.

    Args:
        submissions: the folder of submission files (default: the repository's leaderboard/submissions).
        out: where to write README.md and index.html (default: the repository's leaderboard/, the published files).
    """
    from rlhf_gym.leaderboard.build import build_main

    build_main(submissions, out)


def leaderboard_cli(argv: Sequence[str]) -> None:
    tyro.extras.subcommand_cli_from_dict(
        {"validate": validate, "verify": verify, "build": build},
        prog="rlhf-gym leaderboard",
        description="The leaderboard: validate and verify submissions, build the table and the page.",
        args=list(argv),
    )


def bench(
    quick: tyro.conf.FlagCreatePairsOff[bool] = False,
    device: str = "cpu",
    json: str | None = None,
    threads: int = 2,
    parts: tuple[str, ...] = PARTS,
    doc: str = DEFAULT_DOC,
    no_doc: tyro.conf.FlagCreatePairsOff[bool] = False,
    bf16: tyro.conf.FlagCreatePairsOff[bool] = False,
    env: str = DEFAULT_ENV,
) -> None:
    """Measure every speed comparison side by side (A B A B ..., the median of >= 5 pairwise ratios) and write
    the table in docs/performance.md between its markers (only the parts that ran replace their rows).

    A part that cannot run records its error and the others still run. A bad option is one error line.

    Args:
        quick: small sizes: all parts under 5 minutes on 2 CPU cores (P4 is skipped).
        device: where envs and models run (cpu, cuda, cuda:1).
        json: write every figure, the machine and the command to this JSON file.
        threads: torch CPU threads (also the main job's --threads in the memory part).
        parts: which parts to run: p1 (env bookkeeping), p2 (rollout), p3 (training), p4 (learning per second), memory.
        doc: the markdown page whose marked section gets the table (created if missing).
        no_doc: leave the page alone.
        bf16: run P2 under bf16 autocast on both sides.
        env: the env id of P1, P2 and the memory part.
    """
    from pathlib import Path

    from rlhf_gym.bench.run import parse_parts, run

    try:
        chosen = parse_parts(parts)
    except ValueError as error:
        raise SystemExit(f"rlhf-gym bench: {error}") from None
    if threads < 1:
        raise SystemExit(f"rlhf-gym bench: --threads must be >= 1, got {threads}")
    _checked_device(device)
    try:
        get_task(env)
    except KeyError as error:
        raise SystemExit(f"rlhf-gym bench: --env: {error.args[0]}") from None
    for flag, path in (("--json", json), ("--doc", None if no_doc else doc)):
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise SystemExit(f"rlhf-gym bench: {flag} {path}: the folder {Path(path).parent} does not exist"
                             + (" (run from the repository root, or pass --doc PATH or --no-doc)" if flag == "--doc" else ""))
    results = run(quick, device, json, threads, chosen, doc_path=None if no_doc else doc, bf16=bf16, env_id=env)
    print("\n".join(_bench_summary(results)))


def _bench_summary(results: dict[str, Any]) -> list[str]:
    """One line per headline figure, then the parts that failed."""
    lines = []
    for part, result in results["parts"].items():
        for row in result.get("headline", []):
            goal = f"  (goal {row['goal']}: {'met' if row['met'] else 'NOT met'})" if row.get("goal") else ""
            lines.append(f"{row['figure']}: {row['value']}{goal}")
        if "error" in result:
            lines.append(f"{part}: not measured: {result['error']}")
        if "skipped" in result:
            lines.append(f"{part}: skipped: {result['skipped']}")
    return lines


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
    if args and args[0] == "leaderboard":
        leaderboard_cli(args[1:])
        return
    if args and args[0] == "build-assets":
        build_assets_cli(args[1:])
        return
    tyro.extras.subcommand_cli_from_dict(
        {"envs": envs, "train": train, "evaluate": evaluate, "leaderboard": leaderboard, "build-assets": build_assets,
         "audit": audit, "bench": bench},
        prog="rlhf-gym",
        description="rlhf-gym: token-level Gymnasium environments for RLHF on language.",
        args=args,
    )


if __name__ == "__main__":
    main()

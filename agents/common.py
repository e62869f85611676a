"""The plumbing every agent of the package shares, so that each agent file holds its algorithm.

- **Env construction** (`make_env`) and the run's **components** from the task (`policy_path`,
  `protocol_temperature`): no agent names a task.
- **Run seeds** (`rollout_seed`): each iteration's reset seed, derived from (seed,
  iteration) so that a resumed run replays nothing and skips nothing.
- **Evaluation** (`evaluate`, `paired_final_evaluation`): fixed valid-split prompts and
  sampling stream, and the final paired gold change against the SFT policy.
- **Run folders** (`prepare_run_folder`): one run per folder. A fresh run refuses a folder
  that holds one unless ``--overwrite`` (which empties it first); ``--resume`` needs a
  checkpoint and the config it was trained with, up to `RESUMABLE_FIELDS` (``--force``
  overrides).
- **Checkpoints** (`write_checkpoint`, `latest_checkpoint`, `load_model_weights`): atomic
  folders of tensors (safetensors, ``weights_only`` optimiser states) and JSON, the run's
  config included.
- **Proxy reward** (`proxy_rewards`): the one meaning of ``proxy_reward`` in every agent's
  logs and summary: the preference model's normalised score, without the missing-EOS
  penalty; ``proxy_reward_with_penalty`` adds it.
- **The run around a critic-free group agent** (`GroupAgentConfig`, `GroupAgentRun`): set-up,
  rollout, logging, evaluation, checkpoints and results for RLOO and GRPO.
- **Iteration hook** (`IterationHook`): what ``train(config, on_iteration=...)`` calls after
  each iteration, for benchmarks that time iterations or snapshot the policy.
- **Finish-of-run** (`RunLogger`, `finish_run`): TensorBoard scalars under namespaced tags
  (``charts/``, ``losses/``, ``eval/``, as in CleanRL), hyper-parameters logged once as a
  table, ``summary.json`` (with the command line that launched the run), ``final_policy/``,
  one PNG with proxy reward, gold score and KL against env steps, and the result line.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import matplotlib
import numpy as np
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

import rlhf_gym  # noqa: E402  (registers the envs; get_task)
from rlhf_gym.agents.distributed import Distributed  # noqa: E402
from rlhf_gym.atomic_dir import swap_in  # noqa: E402
from rlhf_gym.env.rollout import EpisodeBatch, collect_episodes, paired_gold  # noqa: E402
from rlhf_gym.env.vector_env import TokenVectorEnv  # noqa: E402
from rlhf_gym.lm.loading import quiet_progress  # noqa: E402
from rlhf_gym.lm.policy import CausalLMPolicy, per_token_kl  # noqa: E402

EVAL_SEED_OFFSET = 10_000  # valid-split evaluations reset and sample with seed + this
PAIRED_SEED = 20_000  # reset/sampling seed of the final paired evaluation: the same posts for every run

IterationHook = Callable[[dict[str, Any], CausalLMPolicy], None]
"""``on_iteration(state, policy)``, an optional argument of every agent's ``train``: called after
each iteration, once its logging, evaluation and checkpoint are done, with the run state
(``iteration``, ``env_steps``, ``history``, ...) and the policy being trained (read it, do not
step it). It may raise to end the run there: the exception propagates out of ``train``, and
no final evaluation or run folder is written. `rlhf_gym.bench` times iterations with it,
pausing between them, and saves the policy at points in wall-clock time. Under ``torchrun``
every rank calls it."""


# Env and components ---------------------------------------------------------------
def make_env(
    env_id: str,
    num_envs: int,
    split: str,
    *,
    device: str = "cpu",
    autoreset_mode: str = "disabled",
    missing_eos_penalty: float | None = None,
    reward: str = "preference",
    reward_model: str | None = None,
    group_size: int = 1,
) -> TokenVectorEnv:
    """``gym.make_vec`` of a registered env with an agent's settings (``reward_model`` None:
    the env's own preference model; ``group_size`` k: k consecutive sub-envs share a prompt)."""
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        device=device,
        split=split,
        autoreset_mode=autoreset_mode,
        missing_eos_penalty=missing_eos_penalty,
        reward=reward,
        **({"group_size": group_size} if group_size != 1 else {}),
        **({"reward_model": reward_model} if reward_model is not None else {}),
    )


def policy_path(env_id: str, policy: str | None) -> str:
    """``policy`` (a hub id or path) if given, else the env's shipped SFT policy.

    Raises:
        ValueError: no ``policy`` for an env that is not a task of the suite.
    """
    return policy if policy is not None else str(_task(env_id, "--policy").policy_path())


def protocol_temperature(env_id: str, temperature: float | None) -> float:
    """``temperature`` if given, else the sampling temperature of the env's benchmark protocol.

    Raises:
        ValueError: no ``temperature`` for an env that is not a task of the suite.
    """
    return temperature if temperature is not None else _task(env_id, "--temperature").temperature


def _task(env_id: str, flag: str) -> Any:
    try:
        return rlhf_gym.get_task(env_id)
    except KeyError:
        raise ValueError(f"env {env_id!r} is not a task of the suite, so it has no default: set {flag}") from None


# Seeds ------------------------------------------------------------------------------
def rollout_seed(seed: int, iteration: int, num_envs: int) -> int:
    """The reset seed of an iteration's rollout batch.

    ``reset(seed=s)`` keys sub-env ``i`` with ``s + i``, so each (seed, iteration) takes its
    own block of ``num_envs`` keys: every batch gets fresh prompts, and a resumed run at
    iteration k draws what an uninterrupted one draws there. (Seeds one apart gave
    consecutive batches all but one prompt in common; PPO then fitted ~90 training
    prompts and the valid split did not move.)

    Example:
        >>> [rollout_seed(0, i, num_envs=4) for i in range(3)]
        [0, 4, 8]
    """
    return (seed * 1_000_003 + iteration) * num_envs


# Evaluation -------------------------------------------------------------------------
def proxy_rewards(preference: torch.Tensor, penalty: torch.Tensor) -> dict[str, float]:
    """The proxy-reward figures of a set of finished episodes, as every agent logs them.

    ``proxy_reward`` is the mean of the preference model's normalised score alone: the
    figure the leaderboard protocol reports, comparable across runs whatever their
    ``missing_eos_penalty``. ``proxy_reward_with_penalty`` adds the env's missing-EOS
    penalty: the task reward a ``reward="preference"`` run trains on, before any KL term.

    Args:
        preference: (N,) normalised preference scores of the episodes.
        penalty: (N,) their missing-EOS penalties (0 or negative).

    Example:
        >>> proxy_rewards(torch.tensor([0.5, 1.5]), torch.tensor([0.0, -1.0]))
        {'proxy_reward': 1.0, 'proxy_reward_with_penalty': 0.5}
    """
    preference, penalty = preference.double(), penalty.double()  # float64: every agent logs the same number
    return {"proxy_reward": preference.mean().item(), "proxy_reward_with_penalty": (preference + penalty).mean().item()}


@torch.no_grad()
def evaluate(env: TokenVectorEnv, policy: CausalLMPolicy, reference: CausalLMPolicy, seed: int) -> dict[str, float]:
    """Fixed valid-split prompts and sampling seed: proxy reward (`proxy_rewards`), gold (and
    its standard error over the episodes), KL to ``reference``, length and EOS rate; and the
    world's own metrics where its env has them (`world_metrics`: Dialogue's over-refusal, say)."""
    batch = collect_episodes(env, policy, seed=seed, generator=torch.Generator(env.device).manual_seed(seed))
    ref_logprobs, _ = reference.token_logprobs(batch.input_ids, batch.attention_mask, env.max_prompt_tokens, entropy=False)
    kl = per_token_kl(batch.logprobs, ref_logprobs, batch.response_mask).sum(-1)
    gold = batch.gold[~torch.isnan(batch.gold)]
    return {
        **proxy_rewards(batch.preference, batch.penalty),
        "gold": gold.mean().item(),  # NaN when the task has no gold judge
        "gold_sem": (gold.std() / math.sqrt(len(gold))).item() if len(gold) > 1 else float("nan"),
        "kl": kl.mean().item(),
        "response_length": batch.response_lengths.float().mean().item(),
        "eos_fraction": batch.terminated.float().mean().item(),
        **world_metrics(env, batch.response_texts),
    }


def world_metrics(env: TokenVectorEnv, responses: list[str]) -> dict[str, float]:
    """The world's own metrics (`World.protocol_metrics`, via `World.response_metrics`) of the
    responses to ``env``'s current prompts; NaN where a metric has no case; empty for an env
    whose world has none, or that is no env of the suite (no ``spec``)."""
    env_id = getattr(getattr(env, "spec", None), "id", None)
    try:
        world = rlhf_gym.get_task(env_id).world if env_id else None
    except KeyError:
        return {}
    if world is None or not world.protocol_metrics:
        return {}
    prompts = env.prompts
    values = world.response_metrics([p.record for p in prompts], responses, [p.reference or "" for p in prompts])
    return {name: math.nan if values[name] is None else float(values[name]) for name in world.protocol_metrics}


def eval_line(ev: dict[str, float]) -> str:
    """The progress log line of one evaluation."""
    return (f"[eval] steps={ev['env_steps']} proxy={ev['proxy_reward']:+.3f} gold={ev['gold']:.3f} "
            f"kl={ev['kl']:.2f} len={ev['response_length']:.1f}")


def paired_final_evaluation(
    eval_env: TokenVectorEnv, policy: CausalLMPolicy, reference: CausalLMPolicy, posts: int
) -> dict[str, Any]:
    """The final policy against the SFT policy on ``posts`` valid posts with one sampling
    stream (`rlhf_gym.env.rollout.paired_gold` at `PAIRED_SEED`), as ``state["paired"]``."""
    print(f"paired evaluation: final vs SFT policy on {posts} valid posts")
    return asdict(paired_gold(eval_env, policy, reference, posts=posts, seed=PAIRED_SEED))


# Run folders ------------------------------------------------------------------------
RUN_ENTRIES: tuple[str, ...] = (
    "checkpoint", "checkpoint.old", "checkpoint.tmp", "tensorboard", "summary.json", "final_policy", "training_curves.png",
)
"""Everything a run writes into its folder (``--overwrite`` removes these and nothing else)."""

RESUMABLE_FIELDS: frozenset[str] = frozenset({
    "total_steps", "eval_every", "checkpoint_every", "paired_posts", "threads", "out", "resume", "overwrite", "force",
})
"""Config fields a resumed run may change without ``--force``: the budget, the cadence of
evaluations and checkpoints, the size of the final paired evaluation, CPU threads and the
run-folder flags. None of them changes what the policy trains on or how; every other field
(seed, batch sizes, learning rates, env, models, ``eval_episodes``, which fixes the prompts
of the learning curve, ...) would make the resumed run a mix of two."""


class RunFolderError(ValueError):
    """A run folder that does not fit the run about to start (the CLI prints it and exits)."""


def prepare_run_folder(config: Any) -> Path:
    """Check ``config.out`` against the run about to start, and return it (created).

    - A fresh run (``resume`` False) needs an empty or new folder, so that checkpoints,
      TensorBoard events and summaries of two runs never mix; with ``overwrite``, the earlier
      run's `RUN_ENTRIES` are removed first.
    - A resumed run needs a checkpoint there, trained with the same config up to
      `RESUMABLE_FIELDS`; with ``force`` it proceeds with a warning naming the changes. A
      checkpoint older than config records resumes with a warning.

    ``config`` is an agent's config dataclass with ``out``, ``resume``, ``overwrite`` and
    ``force``, its defaults resolved as the run records them (e.g. ``temperature``).

    Raises:
        RunFolderError: what is wrong, in one line naming the folder.
    """
    run_dir = Path(config.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"--out {run_dir} is a file; a run folder must be a folder (new, empty, or holding a run)")
    if config.resume:
        if config.overwrite:
            raise RunFolderError(f"--resume continues the run in {run_dir} and --overwrite deletes it: pass one of them")
        _check_resumable(run_dir, config)
    else:
        if config.force:
            raise RunFolderError("--force only lets --resume continue with a changed config; this is a fresh run (no --resume)")
        _clear_for_fresh_run(run_dir, config.overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"field: old -> new"`` for each field of ``new`` that differs from ``old``, outside
    `RESUMABLE_FIELDS`, in ``new``'s field order (a field ``old`` lacks shows as ``<absent>``).

    Example:
        >>> config_changes({"seed": 0, "num_envs": 64, "total_steps": 10}, {"seed": 1, "num_envs": 64, "total_steps": 20})
        ['seed: 0 -> 1']
    """
    return [f"{name}: {_shown(old, name)} -> {value!r}" for name, value in new.items()
            if name not in RESUMABLE_FIELDS and (name not in old or old[name] != value)]


def _shown(config: dict[str, Any], name: str) -> str:
    return repr(config[name]) if name in config else "<absent>"


def _check_resumable(run_dir: Path, config: Any) -> None:
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise RunFolderError(f"--resume: {run_dir} holds no checkpoint (no checkpoint/state.json); drop --resume to start a fresh run")
    recorded = read_state(checkpoint).get("config")
    if recorded is None:
        print(f"warning: {checkpoint} records no config (written before runs stored theirs): "
              "resuming without checking that this run's settings match", file=sys.stderr)
        return
    current = json.loads(json.dumps(asdict(config)))  # as state.json holds it (tuples as lists)
    changes = config_changes(recorded, current)
    if changes and not config.force:
        raise RunFolderError(
            f"--resume: {run_dir} was trained with another config ({'; '.join(changes)}); resume with its settings, "
            "or pass --force to continue with these"
        )
    if changes:
        print(f"warning: --force: resuming {run_dir} with a changed config: {'; '.join(changes)}", file=sys.stderr)
    run_flags = {"resume", "overwrite", "force"}  # they differ between any fresh run and its resumption
    bookkeeping = [f"{name}: {_shown(recorded, name)} -> {value!r}" for name, value in current.items()
                   if name in RESUMABLE_FIELDS - run_flags and (name not in recorded or recorded[name] != value)]
    if bookkeeping:
        print(f"resuming {run_dir} with {'; '.join(bookkeeping)}")


def _clear_for_fresh_run(run_dir: Path, overwrite: bool) -> None:
    entries = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if not entries:
        return
    if not overwrite:
        raise RunFolderError(
            f"{run_dir} is not empty ({', '.join(entries[:6])}{', ...' if len(entries) > 6 else ''}): continue its run with "
            "--resume, replace it with --overwrite, or choose another --out"
        )
    foreign = [name for name in entries if name not in RUN_ENTRIES]
    if foreign:
        raise RunFolderError(
            f"--overwrite removes only what a run writes, and {run_dir} also holds {', '.join(foreign[:6])}: "
            "move those away or choose another --out"
        )
    for name in entries:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    print(f"--overwrite: removed the earlier run in {run_dir} ({', '.join(entries)})")


def launch_command(argv: Sequence[str] | None = None) -> str:
    """The command line that launched this process (``sys.argv``), shell-quoted, as
    ``summary.json`` records it: the console script (or ``python -m rlhf_gym.cli``, as
    ``torchrun`` runs it) as ``rlhf-gym``, anything else as ``python ARGV...``.

    Example:
        >>> launch_command(["/venv/bin/rlhf-gym", "train", "--agent", "ppo", "--out", "runs/my run"])
        "rlhf-gym train --agent ppo --out 'runs/my run'"
    """
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]) if argv else Path()
    if program.name == "rlhf-gym" or (program.name == "cli.py" and program.parent.name == "rlhf_gym"):
        return shlex.join(["rlhf-gym", *argv[1:]])
    return shlex.join(["python", *argv])


# Checkpoints ------------------------------------------------------------------------
def write_checkpoint(run_dir: Path, state: dict[str, Any], write_tensors: Callable[[Path], None], config: Any) -> None:
    """Write ``run_dir/checkpoint`` atomically: ``write_tensors(folder)`` and ``state.json``
    (the run state and ``config``, the run's config dataclass, which `prepare_run_folder`
    checks on resume) into a temp folder, then renames (`rlhf_gym.atomic_dir.swap_in`);
    never a torn one."""
    temp = run_dir / "checkpoint.tmp"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    with quiet_progress():
        write_tensors(temp)
    (temp / "state.json").write_text(json.dumps({**state, "config": asdict(config)}))
    swap_in(temp, run_dir / "checkpoint")


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run folder's newest complete checkpoint, or None."""
    for name in ("checkpoint", "checkpoint.old"):  # .old survives a crash between renames
        if (run_dir / name / "state.json").is_file():
            return run_dir / name
    return None


def read_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "state.json").read_text())


def save_policy_checkpoint(
    run_dir: Path, policy: CausalLMPolicy, optimizer: torch.optim.Optimizer, state: dict[str, Any], config: Any
) -> None:
    """A critic-free agent's checkpoint: the policy (a Hugging Face folder) and the optimiser
    state (tensors only: it loads with ``weights_only``), written atomically with the state
    and the config."""

    def write_tensors(folder: Path) -> None:
        policy.model.save_pretrained(folder / "policy")
        torch.save(optimizer.state_dict(), folder / "optimizer.pt")

    write_checkpoint(run_dir, state, write_tensors, config)


def load_policy_checkpoint(checkpoint: Path, policy: CausalLMPolicy, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what `save_policy_checkpoint` wrote (strictly); return the run state."""
    load_model_weights(policy.model, checkpoint / "policy" / "model.safetensors")
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    return read_state(checkpoint)


def load_model_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a safetensors file into ``model`` strictly: every key must match.

    The one exception is a tied parameter (GPT-2's ``lm_head.weight`` is the embedding
    matrix): ``save_pretrained`` stores it once, so its key may be missing when the
    parameter it shares storage with was loaded.

    Raises:
        ValueError: unexpected keys, or missing keys that are not tied to a loaded one.
    """
    tensors = load_file(str(path))
    result = model.load_state_dict(tensors, strict=False)
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded_storage = {params[k].data_ptr() for k in tensors if k in params}
    untied_missing = [k for k in result.missing_keys if k not in params or params[k].data_ptr() not in loaded_storage]
    if result.unexpected_keys or untied_missing:
        raise ValueError(
            f"checkpoint {path} does not fit the model: missing keys {untied_missing[:5]}, "
            f"unexpected keys {list(result.unexpected_keys)[:5]} (a different architecture or policy?)"
        )


class RunLogger:
    """TensorBoard writer for one run folder."""

    def __init__(self, run_dir: Path, config: dict[str, Any], purge_step: int | None = None) -> None:
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=purge_step)
        if purge_step is None:
            table = "\n".join(f"|{key}|{value}|" for key, value in config.items())
            self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            if key != "env_steps":
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        self.writer.close()


def plot_training_curves(history: list[dict[str, float]], evals: list[dict[str, float]], path: Path, title: str) -> None:
    """Proxy reward, gold score and KL vs env steps: training batches (lines) and evals (dots)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    labels = ("proxy reward (normalised)", "gold score", "KL(pi || pi_ref), nats/episode")
    for ax, key, label in zip(axes, ("proxy_reward", "gold", "kl"), labels):
        if history:
            ax.plot([h["env_steps"] for h in history], [h[key] for h in history], color="tab:blue", alpha=0.6, label="train batches")
        if evals:
            ax.plot([e["env_steps"] for e in evals], [e[key] for e in evals], "o-", color="tab:red", label="valid split")
        ax.set_xlabel("env steps (generated tokens)")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 200k, not 200000 run into its neighbours
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _paired_figures(paired: dict[str, Any] | None) -> dict[str, Any]:
    """summary.json's paired gold change (a `PairedGold` as a dict), when the run measured one."""
    if not paired:
        return {}
    return {
        # Final policy minus the SFT policy, post by post on the same valid posts and sampling
        # stream (common random numbers): the figure to read; the standard error is that of the
        # per-post differences.
        "gold_improvement_paired": paired["change"],
        "gold_improvement_paired_sem": paired["sem"],
        "gold_final_paired": paired["policy_gold"],
        "gold_baseline_paired": paired["baseline_gold"],
        "paired_posts": paired["posts"],
    }


def finish_run(
    run_dir: Path, agent: str, config: Any, state: dict[str, Any], model: Any, tokenizer: Any, title: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write what every finished run leaves: ``summary.json``, ``final_policy/`` (an ordinary
    Hugging Face checkpoint of ``model`` and ``tokenizer``), the PNG, and a result line.

    ``state`` holds ``env_steps``, ``iteration``, ``wall_time``, ``history`` and ``evals``.
    """
    first, last = state["evals"][0], state["evals"][-1]
    summary = {
        "agent": agent,
        "env": config.env,
        "seed": config.seed,
        "env_steps": state["env_steps"],
        "iterations": state["iteration"],
        "wall_time_seconds": round(state["wall_time"], 1),
        "initial": first,
        "final": last,
        "gold_improvement": last["gold"] - first["gold"],
        # Standard error of that change, the two evaluations taken as independent samples. They
        # share prompts and sampling seed, so the true error is smaller: an upper bound that
        # says how far a change on this many episodes can be read.
        "gold_improvement_sem": math.hypot(first.get("gold_sem", math.nan), last.get("gold_sem", math.nan)),
        **_paired_figures(state.get("paired")),
        "evals": state["evals"],  # every valid-split evaluation: the learning curve
        "config": asdict(config),
        "command": launch_command(),  # how this policy was trained, for a leaderboard submission
        **(extra or {}),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    with quiet_progress():
        model.save_pretrained(run_dir / "final_policy")
        tokenizer.save_pretrained(run_dir / "final_policy")
    plot_training_curves(state["history"], state["evals"], run_dir / "training_curves.png", title=title)
    if "gold_improvement_paired" in summary:
        gold_line = (f"valid gold {summary['gold_baseline_paired']:.3f} -> {summary['gold_final_paired']:.3f} "
                     f"({summary['gold_improvement_paired']:+.3f} ± {summary['gold_improvement_paired_sem']:.3f} "
                     f"s.e., paired vs SFT on {summary['paired_posts']} posts)")
    else:
        gold_line = (f"valid gold {first['gold']:.3f} -> {last['gold']:.3f} ({summary['gold_improvement']:+.3f} "
                     f"± {summary['gold_improvement_sem']:.3f} s.e.)")
    print(
        f"done: {state['env_steps']} env steps in {summary['wall_time_seconds']:.0f} s | {gold_line} | proxy "
        f"{first['proxy_reward']:+.3f} -> {last['proxy_reward']:+.3f} | KL {last['kl']:.2f} | {run_dir}"
    )
    return summary


# Critic-free group agents (RLOO, GRPO) -------------------------------------------------
@dataclass
class GroupAgentConfig:
    """What every critic-free group agent (RLOO, GRPO) is configured by; each adds its own."""

    env: str = "RLHF-Summarize-v0"  # registered env id
    total_steps: int = 60_000  # env steps (generated tokens, all sub-envs) to train for
    seed: int = 0  # seeds prompts, sampling and minibatch order
    out: str = "runs/group"  # run folder: TensorBoard logs, checkpoints, plot, summary.json
    policy: str | None = None  # causal LM (hub id or path); default: the env's SFT policy
    device: str = "cpu"  # torch device of env, policy and models
    threads: int = 2  # torch CPU threads
    num_prompts: int = 16  # prompts per batch
    group_size: int = 4  # responses per prompt, sampled by k consecutive sub-envs (64 episodes per batch, as our PPO)
    temperature: float | None = None  # sampling and update temperature; None: the task's protocol temperature
    learning_rate: float = 3e-5  # Adam step size
    adam_eps: float = 1e-5  # Adam's epsilon
    kl_coef: float = 0.05  # beta of the KL to the reference
    max_grad_norm: float = 1.0  # global gradient-norm clip
    missing_eos_penalty: float | None = 1.0  # subtracted from responses without EOS (N+ #23)
    reward: Literal["preference", "gold"] = "preference"  # what the training env rewards
    reward_model: str | None = None  # the preference model (path, hub id, ensemble); None: the env's
    eval_every: int = 10  # iterations between evaluations on the valid split
    eval_episodes: int = 128  # valid-split episodes per evaluation (fixed prompts and seed)
    paired_posts: int = 512  # valid posts of the final paired evaluation against the SFT policy (0 skips it)
    checkpoint_every: int = 10  # iterations between atomic checkpoints
    resume: bool = False  # continue from the run folder's last checkpoint (an error if there is none)
    overwrite: bool = False  # a fresh run into a folder holding a run: remove that run first
    force: bool = False  # --resume with a config that differs from the checkpoint's (listed as a warning)

    @property
    def num_envs(self) -> int:
        """Episodes per batch: ``num_prompts * group_size``."""
        return self.num_prompts * self.group_size

    def __post_init__(self) -> None:
        for name in ("total_steps", "num_prompts", "eval_every", "eval_episodes", "checkpoint_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (the group is the baseline), got {self.group_size}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        for name in ("learning_rate", "adam_eps"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        if not (math.isfinite(self.kl_coef) and self.kl_coef >= 0):
            raise ValueError(f"kl_coef must be a finite number >= 0, got {self.kl_coef}")
        if self.paired_posts < 0 or self.paired_posts == 1:
            raise ValueError(f"paired_posts must be 0 (off) or >= 2, got {self.paired_posts}")


@dataclass
class GroupRollout:
    """One iteration's batch, with what every group agent needs of it.

    Attributes:
        batch: the episodes (groups of ``group_size`` consecutive rows share a prompt).
        ref_logprobs: (N, T) the frozen reference's log-probs of the sampled tokens.
        sequence_kl: (N,) k1 estimate of KL(pi || pi_ref) per response, nats.
        seed: the iteration's seed (reset, sampling and minibatch order derive from it).
    """

    batch: EpisodeBatch
    ref_logprobs: torch.Tensor
    sequence_kl: torch.Tensor
    seed: int


class GroupAgentRun:
    """The run around a critic-free group agent's update: what RLOO and GRPO share.

    Set-up (the train env with ``group_size``, the valid env, the policy and its frozen
    reference, Adam, resume from the last checkpoint, TensorBoard, the first evaluation),
    `rollout` (one episode-synchronous batch and the reference's log-probs), `minibatches`
    and `optimizer_step` (the update's rows and steps), `end_iteration` (logging,
    evaluation, checkpoint, then ``on_iteration``, an `IterationHook`) and `finish` (the
    paired evaluation and the run folder). The agent's file holds only the advantages and
    the loss.

    Launched by ``torchrun``, each rank runs its shard of the batch (`Distributed`): rows
    ``[offset, offset + n)`` of the single-process batch, with the same prompts and sampling
    draws, and gradients averaged across ranks. Only rank 0 evaluates and writes the run
    folder. A run of W ranks therefore computes what one process computes with the same
    total batch, up to the order of floating-point sums.
    """

    def __init__(self, config: GroupAgentConfig, agent: str, on_iteration: IterationHook | None = None) -> None:
        torch.set_num_threads(config.threads)
        self.on_iteration = on_iteration
        self.dist = Distributed.from_environment(config.device)
        self.agent = agent
        self.config = config = dataclasses.replace(config, temperature=protocol_temperature(config.env, config.temperature))
        self.run_dir = prepare_run_folder(config) if self.dist.is_main else Path(config.out)  # rank 0 owns the folder
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(self.dist.device(config.device))
        self.local_envs, self.row_offset = self.dist.shard(config.num_envs)
        if self.local_envs % config.group_size != 0:
            raise ValueError(
                f"each of the {self.dist.world_size} ranks runs {self.local_envs} sub-envs, not a whole number of "
                f"groups of {config.group_size}: make num_prompts ({config.num_prompts}) a multiple of the world size"
            )
        settings = dict(device=str(self.device), missing_eos_penalty=config.missing_eos_penalty, reward_model=config.reward_model)
        self.env = make_env(config.env, self.local_envs, "train", reward=config.reward, group_size=config.group_size, **settings)
        self.eval_env = make_env(config.env, config.eval_episodes, "valid", **settings) if self.dist.is_main else None
        torch.manual_seed(config.seed)
        self.policy = CausalLMPolicy.from_pretrained(policy_path(config.env, config.policy), temperature=config.temperature).to(self.device)
        self.reference = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.learning_rate, eps=config.adam_eps)
        self.state: dict[str, Any] = {"iteration": 0, "env_steps": 0, "history": [], "evals": [], "wall_time": 0.0}
        checkpoint = latest_checkpoint(self.run_dir) if config.resume and self.dist.is_main else None  # only rank 0's disk has it
        if checkpoint is not None:
            self.state = load_policy_checkpoint(checkpoint, self.policy, self.optimizer)
            print(f"resumed from {checkpoint} at iteration {self.state['iteration']}, {self.state['env_steps']} env steps")
        if config.resume:  # the other ranks take rank 0's run state, weights and Adam state
            self.state = self.dist.broadcast_from_main(self.state, [self.policy], self.optimizer)
        purge_step = self.state["env_steps"] if checkpoint else None
        self.logger = RunLogger(self.run_dir, config=asdict(config), purge_step=purge_step) if self.dist.is_main else None
        if not self.state["evals"]:
            self._evaluate()
        self.progress = tqdm(total=config.total_steps, initial=self.state["env_steps"], unit="tok", desc=agent, dynamic_ncols=True,
                             disable=not self.dist.is_main)
        self._started = time.time() - self.state["wall_time"]
        self._rollout_seconds = 0.0

    def unfinished(self) -> bool:
        return self.state["env_steps"] < self.config.total_steps

    def rollout(self) -> GroupRollout:
        """Sample this iteration's batch: ``group_size`` responses to each of ``num_prompts`` prompts."""
        seed = rollout_seed(self.config.seed, self.state["iteration"], self.config.num_envs)  # resumable: derived, not carried
        self.policy.eval()
        started = time.time()
        # This rank's rows of the whole batch: their prompts (reset keys seed + row) and their
        # slice of the batch's sampling draws.
        generator = torch.Generator(self.device).manual_seed(seed)
        batch = collect_episodes(self.env, self.policy, seed=seed + self.row_offset, generator=generator,
                                 rows=(self.row_offset, self.config.num_envs))
        self._rollout_seconds = time.time() - started
        with torch.no_grad():
            ref_logprobs, _ = self.reference.token_logprobs(
                batch.input_ids, batch.attention_mask, self.env.max_prompt_tokens, entropy=False
            )
        sequence_kl = per_token_kl(batch.logprobs, ref_logprobs, batch.response_mask).sum(-1)
        self.policy.train()
        return GroupRollout(batch, ref_logprobs, sequence_kl, seed)

    def minibatches(self, num_minibatches: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, float]]:
        """One epoch's minibatches: this rank's rows of each, and the factor its loss takes.

        The order is a permutation of the whole batch's rows, the same on every rank, cut into
        ``num_minibatches`` slices; a rank takes the rows of each slice it holds. A loss that is
        a mean over the rank's rows, times the factor ``world_size * rows / slice``, averages
        over the ranks to the mean over the whole slice: the single-process loss.
        """
        order = torch.randperm(self.config.num_envs, generator=generator)
        size = self.config.num_envs // num_minibatches
        for start in range(0, self.config.num_envs, size):
            rows = order[start : start + size]
            local = self.dist.own_rows(rows, self.config.num_envs)
            yield local.to(self.device), self.dist.world_size * len(local) / size

    def optimizer_step(self, loss: torch.Tensor | None) -> None:
        """Backward, average the gradients over the ranks, clip the global gradient norm, step.

        ``loss`` None: this rank holds no row of the minibatch (its gradient is zero), but it
        still joins the average and the step, so the ranks stay identical.
        """
        self.optimizer.zero_grad(set_to_none=True)
        if loss is not None:
            loss.backward()
        self.dist.average_gradients(self.policy.parameters())
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.max_grad_norm)
        self.optimizer.step()

    def end_iteration(self, rollout: GroupRollout, losses: dict[str, list[float]]) -> None:
        """Count the env steps, log the batch and the losses, evaluate and checkpoint on schedule."""
        batch, state = rollout.batch, self.state
        steps = int(self.dist.sum(batch.response_mask.sum().item()))  # all ranks' tokens
        state["env_steps"] += steps
        state["iteration"] += 1
        state["wall_time"] = time.time() - self._started
        record = self.dist.mean({  # means over the ranks' equal shards: the batch's means
            **proxy_rewards(batch.preference, batch.penalty),
            "gold": batch.gold.nanmean().item(),
            "kl": rollout.sequence_kl.mean().item(),
            "response_length": batch.response_lengths.float().mean().item(),
            "reward_std_within_groups": batch.scores.view(-1, self.config.group_size).std(-1).mean().item(),
            **{k: float(np.mean(v)) if v else 0.0 for k, v in losses.items()},
        })
        record = {"env_steps": state["env_steps"], **record, "tokens_per_second": steps / max(self._rollout_seconds, 1e-9)}
        state["history"].append(record)
        if self.logger is not None:
            self.logger.scalars("charts", {k: v for k, v in record.items() if k not in losses}, state["env_steps"])
            self.logger.scalars("losses", {k: record[k] for k in losses}, state["env_steps"])
        self.progress.update(steps)
        self.progress.set_postfix(proxy=f"{record['proxy_reward']:+.2f}", gold=f"{record['gold']:.3f}", kl=f"{record['kl']:.2f}")
        last = not self.unfinished()
        if state["iteration"] % self.config.eval_every == 0 or last:
            self._evaluate()
            if self.dist.is_main:
                self.progress.write(eval_line(state["evals"][-1]))
        if (state["iteration"] % self.config.checkpoint_every == 0 or last) and self.dist.is_main:
            save_policy_checkpoint(self.run_dir, self.policy, self.optimizer, state, self.config)
        if self.on_iteration is not None:
            self.on_iteration(state, self.policy)

    def finish(self, title: str) -> dict[str, Any]:
        """The paired final evaluation, then the run folder (`finish_run`); returns the summary."""
        self.progress.close()
        if not self.dist.is_main:  # rank 0 evaluates and writes the run folder
            self.dist.barrier()
            self.dist.close()
            return {}
        self.logger.close()
        if self.config.paired_posts:
            self.state["paired"] = paired_final_evaluation(self.eval_env, self.policy.eval(), self.reference, self.config.paired_posts)
        summary = finish_run(self.run_dir, self.agent, self.config, self.state, self.policy.model, self.env.tokenizer, title=title,
                             extra={"world_size": self.dist.world_size})
        self.dist.barrier()
        self.dist.close()
        return summary

    def _evaluate(self) -> None:
        """Rank 0 evaluates on the valid split; the other ranks wait (their policies are the same)."""
        if self.dist.is_main:
            result = evaluate(self.eval_env, self.policy, self.reference, self.config.seed + EVAL_SEED_OFFSET)
            self.state["evals"].append({"env_steps": self.state["env_steps"], **result})
            self.logger.scalars("eval", self.state["evals"][-1], self.state["env_steps"])
        else:
            self.state["evals"].append({"env_steps": self.state["env_steps"]})  # placeholder: ranks keep equal counters
        self.dist.barrier()

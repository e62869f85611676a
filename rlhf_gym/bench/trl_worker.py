"""Training workers: one long-lived process per side of a comparison, paced by its parent.

Model loading and set-up must not be timed, and the two sides must alternate (A B A B) so
that a noisy neighbour slows both alike. So each side trains in its own process, ours, SB3's
or TRL's (TRL only ever runs in such a process, with its own folder first on
``PYTHONPATH``), and calls a pacer (`rlhf_gym.bench.trl_pacing`) at the end of each
iteration: our agents through their ``on_iteration`` hook
(`rlhf_gym.agents.common.IterationHook`), TRL's trainers through a ``TrainerCallback``
(`rlhf_gym.bench.trl_trainers`). The parent holds a `WorkerHandle` per worker and sends
it the protocol's commands; the worker's stderr (and whatever it prints) goes to a log.

    python -m rlhf_gym.bench.trl_worker --side ours --mode command --settings '{...}' --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlhf_gym.bench.interleave import Sample
from rlhf_gym.bench.trl_pacing import BudgetPacer, Channel, CommandPacer, Pacer, StopRun
from rlhf_gym.bench.trl_settings import TrainingSettings


class WorkerError(RuntimeError):
    """A worker died, spoke out of protocol or timed out (the message ends with its log's last lines)."""


# The sides ---------------------------------------------------------------------------
def serve_ours(settings: TrainingSettings, make_pacer: Callable[[dict[str, Any]], Pacer], out: Path,
               config_overrides: dict[str, Any] | None = None) -> Pacer:
    """Train our agent for ``settings``, calling the pacer after each iteration until it stops the run."""
    import dataclasses
    import importlib

    import gymnasium as gym

    from rlhf_gym.bench.trl_settings import our_config, our_effective
    from rlhf_gym.registration import get_task

    config = dataclasses.replace(our_config(settings, out / "run"), **(config_overrides or {}))
    # The response budget of the env our agent will make (its registered kwargs, else the task's).
    max_new_tokens = gym.spec(config.env).kwargs.get("max_new_tokens", get_task(settings.env).max_new_tokens)
    pacer = make_pacer(our_effective(settings.algorithm, config, max_new_tokens))
    history: list[dict[str, Any]] = []
    if isinstance(pacer, CommandPacer):
        pacer.extra = lambda: {"response_length": float(history[-1]["response_length"])}

    def on_iteration(state: dict[str, Any], policy: Any) -> None:
        history.append(state["history"][-1])
        pacer.iteration_end(state["wall_time"], policy.save_pretrained)

    train = importlib.import_module(f"rlhf_gym.agents.{settings.algorithm}").train
    try:
        train(config, on_iteration=on_iteration)
    except StopRun:
        pass
    return pacer


def serve_sb3(settings: TrainingSettings, pacer: BudgetPacer, out: Path) -> BudgetPacer:
    """Train SB3's PPO (``rlhf-gym train --agent sb3-ppo``, its defaults) under ``pacer`` (P4)."""
    from rlhf_gym.agents.sb3.train import SB3Config, train
    from rlhf_gym.bench.trl_settings import EVAL_EPISODES, NEVER, bench_env_id
    from rlhf_gym.registration import get_task

    config = SB3Config(
        env=bench_env_id(settings), algo="ppo", total_steps=NEVER, seed=settings.seed, out=str(out / "run"),
        policy=str(get_task(settings.env).policy_path()), device=settings.device, threads=settings.threads,
        temperature=settings.temperature, eval_every=NEVER, eval_episodes=EVAL_EPISODES, paired_posts=0, checkpoint_every=NEVER,
        overwrite=True,
    )
    try:
        train(config, on_iteration=lambda state, policy: pacer.iteration_end(state["wall_time"], policy.save_pretrained))
    except StopRun:
        pass
    return pacer


def serve_trl(settings: TrainingSettings, make_pacer: Callable[[dict[str, Any]], Pacer], out: Path) -> Pacer:
    """Train TRL's trainer for ``settings`` (in a process with TRL on its path) under the pacer."""
    from rlhf_gym.bench.trl_trainers import train_with_pacer

    return train_with_pacer(settings, make_pacer, out)


# The parent's end ---------------------------------------------------------------------
class WorkerHandle:
    """A worker process, started by the parent, spoken to through the protocol.

    Args:
        name: for messages (``"ours"``, ``"trl"``).
        argv: the command (``python -m rlhf_gym.bench.trl_worker ...``).
        env: its environment.
        log_path: where its stderr (and everything it prints) goes.
        timeout: seconds to wait for any one reply.
    """

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_path: Path, timeout: float = 1800.0) -> None:
        self.name = name
        self.log_path = log_path
        self.timeout = timeout
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # closed in close()
        self.process = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env)
        self.ready: dict[str, Any] | None = None

    def wait_ready(self) -> dict[str, Any]:
        """Block until the worker is set up (and has run its untimed first iteration); its ``ready`` message."""
        if self.ready is None:
            self.ready = self._expect("ready")
        return self.ready

    def run(self, index: int) -> Sample:
        """Release one iteration and return its timing (`rlhf_gym.bench.interleave.Side` calls this)."""
        self.wait_ready()
        self._send({"command": "run", "index": index})
        reply = self._expect("done")
        return Sample(work=float(reply["work"]), seconds=float(reply["seconds"]), extra=dict(reply.get("extra", {})))

    def finish(self) -> dict[str, Any]:
        """Wait for a worker that runs to its own end (P4) and return its ``finished`` message."""
        reply = self._expect("finished")
        self.close()
        return reply

    def close(self) -> None:
        """Tell the worker to stop and wait for it (killed if it does not exit within a minute)."""
        if self.process.poll() is None:
            try:
                self._send({"command": "stop"})
                self.process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> WorkerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerError(self._died("it closed its input")) from None

    def _expect(self, event: str) -> dict[str, Any]:
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(self.timeout):
                self.process.kill()
                raise WorkerError(self._died(f"no {event!r} within {self.timeout:.0f} s"))
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            raise WorkerError(self._died(f"it exited with status {self.process.returncode} before {event!r}"))
        message = json.loads(line)
        if message.get("event") != event:
            raise WorkerError(self._died(f"expected {event!r}, got {message!r}"))
        return message

    def _died(self, what: str) -> str:
        return f"{self.name} worker: {what}; the end of its log {self.log_path}:\n{self.log_tail()}"


def worker_command(side: str, mode: str, settings: TrainingSettings, out: Path, extra: Sequence[str] = ()) -> list[str]:
    """The argv that starts a worker (this module, run by the current interpreter)."""
    return [sys.executable, "-m", "rlhf_gym.bench.trl_worker", "--side", side, "--mode", mode,
            "--settings", json.dumps(settings.to_json()), "--out", str(out), *extra]


def worker_environment(trl_folder: Path | None) -> dict[str, str]:
    """The environment of a worker: offline (no hub access), and TRL's folder first on
    ``PYTHONPATH`` for a TRL worker only."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               TRL_EXPERIMENTAL_SILENCE="1", PYTHONUNBUFFERED="1")
    if trl_folder is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(trl_folder.resolve()), *filter(None, [env.get("PYTHONPATH")])])
    return env


def device_synchronizer(device: str) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` for a CUDA device (a step's kernels may still be queued when
    Python reaches the pacer), else None."""
    if not device.startswith("cuda"):
        return None
    import torch

    return lambda: torch.cuda.synchronize(device)


# Entry point -------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a training worker of rlhf-gym bench (started by its parent)")
    parser.add_argument("--side", choices=("ours", "trl", "sb3"), required=True)
    parser.add_argument("--mode", choices=("command", "budget"), required=True)
    parser.add_argument("--settings", required=True, help="TrainingSettings as JSON")
    parser.add_argument("--out", required=True, help="the worker's folder (run folder, TRL output, snapshots)")
    parser.add_argument("--budget", type=float, default=60.0, help="budget mode: training seconds")
    parser.add_argument("--marks", default="", help="budget mode: comma-separated training seconds at which to snapshot")
    parser.add_argument("--overrides", default="{}", help="ours: config fields to override, as JSON")
    args = parser.parse_args(argv)
    settings = TrainingSettings.from_json(json.loads(args.settings))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    channel = Channel.for_process()
    if args.mode == "command":
        def make_pacer(info: dict[str, Any]) -> Pacer:
            return CommandPacer(channel, info, synchronize=device_synchronizer(settings.device))
    else:
        marks = [float(m) for m in args.marks.split(",") if m]
        budget_pacer = BudgetPacer(args.budget, marks, out / "snapshots")

        def make_pacer(info: dict[str, Any]) -> Pacer:
            return budget_pacer
    if args.side == "ours":
        pacer = serve_ours(settings, make_pacer, out, json.loads(args.overrides))
    elif args.side == "trl":
        pacer = serve_trl(settings, make_pacer, out)
    else:
        pacer = serve_sb3(settings, make_pacer({}), out)
    if isinstance(pacer, BudgetPacer):
        channel.send({"event": "finished", "snapshots": pacer.snapshots, "iterations": pacer.iterations})


if __name__ == "__main__":
    main()

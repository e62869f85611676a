"""Pacing a training loop from outside: the worker's end of the benchmark protocol.

A training worker (`rlhf_gym.bench.trl_worker`) calls a pacer at the end of each of its
iterations, with the seconds its training has run and a function that saves the policy:

- `CommandPacer` (the speed comparison, P3): after the first iteration (set-up, untimed)
  the worker says it is ready and waits; each ``run`` command then releases exactly one
  iteration, whose seconds (from the release to the end of the iteration) it reports before
  waiting again. So the side not being timed is blocked on a read and uses no CPU.
- `BudgetPacer` (learning per second, P4): trains until a wall-clock budget is spent,
  saving the policy when the training time passes given marks; the time spent saving is
  not counted.

A pacer ends the run by raising `StopRun` inside the training loop.

The protocol is JSON lines: commands on the worker's stdin (``{"command": "run"}``,
``{"command": "stop"}``), replies on its stdout (``{"event": "ready", "settings": ...}``,
``{"event": "done", "seconds": ..., "work": 1.0, "extra": ...}``, ``{"event": "finished",
...}``). `Channel.for_process` keeps the original stdout for the protocol alone and points
file descriptor 1 at stderr, so that whatever the libraries print cannot corrupt it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

SaveFunction = Callable[[Path], None]  # writes the policy being trained to a folder (Hugging Face format)


class StopRun(Exception):
    """Raised by a pacer inside the training loop to end the run (the parent said stop, or the budget is spent)."""


class Channel:
    """The worker's end of the protocol: commands from ``commands``, replies to ``replies``.

    `Channel.for_process` keeps the process's stdout for the replies and points fd 1 at
    stderr, so that prints from any library go to the log instead of into the protocol.
    """

    def __init__(self, commands: TextIO, replies: TextIO) -> None:
        self._commands = commands
        self._replies = replies

    @classmethod
    def for_process(cls) -> Channel:
        sys.stdout.flush()
        replies = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)  # sys.stdout still writes to fd 1, now the log
        return cls(sys.stdin, replies)

    def send(self, message: dict[str, Any]) -> None:
        self._replies.write(json.dumps(message) + "\n")
        self._replies.flush()

    def receive(self) -> str:
        """The next command, ``"run"`` or ``"stop"`` (a closed stdin is ``"stop"``)."""
        line = self._commands.readline()
        if not line:
            return "stop"
        command = json.loads(line).get("command")
        if command not in ("run", "stop"):
            raise ValueError(f"unknown command {command!r}; expected 'run' or 'stop'")
        return command


class CommandPacer:
    """One timed iteration per ``run`` command, paused in between (P3).

    The first call of `iteration_end` (after the untimed first iteration) sends ``ready``
    with ``info`` (and torch's thread count, as training set it); each later one sends the
    seconds since the iteration was released.

    Args:
        channel: the worker's `Channel`.
        info: what the ``ready`` message carries (the side's effective settings).
        extra: called at each iteration's end for that run's side figures (`Sample.extra`).
        synchronize: waits for the device's queued work (``torch.cuda.synchronize`` on a GPU)
            before the clock is read.
    """

    def __init__(self, channel: Channel, info: dict[str, Any], extra: Callable[[], dict[str, float]] | None = None,
                 synchronize: Callable[[], None] | None = None) -> None:
        self.channel = channel
        self.info = info
        self.extra = extra or dict
        self.synchronize = synchronize or (lambda: None)
        self.released: float | None = None  # perf_counter() when the current iteration was released

    def iteration_end(self, clock: float, save: SaveFunction) -> None:
        """End of an iteration: report it (or ``ready``), then block until the next command.

        Raises:
            StopRun: the parent sent ``stop`` (or closed the pipe).
        """
        self.synchronize()
        if self.released is None:
            torch = sys.modules.get("torch")  # loaded by any training loop; its threads as training set them
            threads = {"torch threads": torch.get_num_threads()} if torch is not None else {}
            self.channel.send({"event": "ready", "settings": {**self.info, **threads}})
        else:
            seconds = time.perf_counter() - self.released
            self.channel.send({"event": "done", "seconds": seconds, "work": 1.0, "extra": self.extra()})
        if self.channel.receive() == "stop":
            raise StopRun
        self.released = time.perf_counter()


@dataclass
class BudgetPacer:
    """Train for ``budget`` seconds, saving the policy as the training time passes each mark (P4).

    ``clock`` (the caller's seconds since training started) counts this pacer's own time
    too; that time (saving) is subtracted, so snapshots cost the run nothing.

    Attributes:
        budget: training seconds; the run stops at the first iteration end past it (and
            snapshots there).
        marks: training seconds at which to snapshot (at the first iteration end past each).
        folder: snapshots go to ``folder/snapshot-K``.
        snapshots: per snapshot, ``{"seconds", "iteration", "path", "marks"}``: its training
            seconds, how many iterations it had, its folder and the marks it stands for.
    """

    budget: float
    marks: Sequence[float]
    folder: Path
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    paused: float = 0.0  # seconds spent in this pacer (saving), not counted as training
    iterations: int = 0

    def iteration_end(self, clock: float, save: SaveFunction) -> None:
        """End of an iteration at ``clock`` seconds since training began: snapshot if a mark
        (or the budget) is passed.

        Raises:
            StopRun: the budget is spent.
        """
        entered = time.perf_counter()
        self.iterations += 1
        elapsed = clock - self.paused
        taken = {mark for snapshot in self.snapshots for mark in snapshot["marks"]}
        passed = [mark for mark in self.marks if mark <= elapsed and mark not in taken]
        if passed or elapsed >= self.budget:
            path = self.folder / f"snapshot-{len(self.snapshots)}"
            save(path)
            self.snapshots.append({"seconds": elapsed, "iteration": self.iterations, "path": str(path), "marks": passed})
        self.paused += time.perf_counter() - entered
        if elapsed >= self.budget:
            raise StopRun


Pacer = CommandPacer | BudgetPacer

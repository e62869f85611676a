"""Memory: the peak RSS of the README's main job, and RSS over a long env run (which must stay flat).

- Main job: ``rlhf-gym train --agent ppo --env RLHF-Summarize-v0`` in a child process, into a
  temporary run folder. Full: the README's 40k env steps with every default. Quick: 2,048
  env steps, i.e. one PPO iteration (64 episodes of up to 64 tokens: one rollout, four
  update epochs, the evaluations before and after), with ``--paired-posts 0`` (no final
  paired evaluation of 512 posts, which is sampling again at the same batch size). The peak
  is the child's own high-water mark (``VmHWM`` in ``/proc/PID/status``, polled; see
  `peak_rss_of` for why not ``ru_maxrss``); its RSS is also sampled while it runs.
- Long env run: a `TokenVectorEnv` with the shipped preference model, stepped with random
  actions for many episodes in this process, drawing its prompts from a pool of already
  generated ones (`rlhf_gym.bench.env_bookkeeping.prompt_pool`; no gold judge then). The
  world's own prompt source keeps its last 4,096 prompts in an LRU cache (~13 KiB each),
  which grows for the first 4,096 episodes and then stays put: bounded, not a leak, but it
  would read as a slope in a shorter run. RSS from ``/proc/self/statm`` every few steps.
  Reported: first, last and highest RSS, and the least-squares slope in MiB per 1k
  episodes after the first tenth of the run (allocator pools fill there).

Linux only (``/proc``); elsewhere each figure records the error.

    rlhf-gym bench --parts memory
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlhf_gym.bench.env_bookkeeping import Log, prompt_pool, synchronize

MIB = 2**20
FLAT_SLOPE_MIB_PER_1K = 1.0  # "flat": under 1 MiB per 1k episodes (20 MiB over a 20k-episode run)


@dataclass(frozen=True)
class MemorySizes:
    """How much the memory part runs.

    Attributes:
        total_steps: ``--total-steps`` of the main job.
        paired_posts: ``--paired-posts`` of the main job (None: its default, 512).
        num_envs: sub-envs of the long env run.
        episodes: episodes of the long env run (at least; whole vector steps).
        samples: RSS samples over the long env run.
        timeout: seconds the main job may take before it is stopped.
    """

    total_steps: int
    paired_posts: int | None
    num_envs: int
    episodes: int
    samples: int = 64
    timeout: float = 3600.0


QUICK = MemorySizes(total_steps=2048, paired_posts=0, num_envs=64, episodes=2048, timeout=900.0)
FULL = MemorySizes(total_steps=40_000, paired_posts=None, num_envs=64, episodes=20_480)


def resident_mib(pid: int | str = "self") -> float:
    """Resident set size of process ``pid`` in MiB, from ``/proc/PID/statm`` (Linux).

    Raises:
        OSError: no such process, or no ``/proc``.
    """
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def high_water_mib(pid: int | str = "self") -> float:
    """Peak resident set size so far of process ``pid`` in MiB: ``VmHWM`` of ``/proc/PID/status`` (Linux).

    Raises:
        OSError: no such process, or no ``/proc``; also once it has exited (its memory is gone).
    """
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise OSError(f"/proc/{pid}/status has no VmHWM (the process has exited)")


def peak_rss_of(
    command: Sequence[str], *, timeout: float, log_path: Path, poll_seconds: float = 0.2, sample_seconds: float = 2.0,
) -> dict[str, Any]:
    """Run ``command`` to its end; return its peak RSS (MiB), exit code, seconds and RSS samples.

    The peak is the child's ``VmHWM`` (its memory's high-water mark), polled every
    ``poll_seconds``, so growth in its last ``poll_seconds`` is missed. Not ``ru_maxrss``:
    Linux carries the RSS of the image a child replaces at ``exec`` into it, so a child of
    this process (torch and the models loaded) would report at least this process's RSS.
    Its output goes to ``log_path``.

    Raises:
        TimeoutError: it ran past ``timeout`` seconds (it is killed first).
    """
    samples: list[tuple[float, float]] = []
    peak = 0.0
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT)
        while child.poll() is None:
            elapsed = time.perf_counter() - start
            if elapsed > timeout:
                child.kill()
                child.wait()
                raise TimeoutError(f"{' '.join(command)} ran past {timeout:.0f} s and was stopped")
            try:
                peak = max(peak, high_water_mib(child.pid))
                rss = round(resident_mib(child.pid), 1)
                # ~0 (under 0.05 MiB): not yet exec'd, or already exiting; not a sample of the command
                if rss > 0 and (not samples or elapsed - samples[-1][0] >= sample_seconds):
                    samples.append((round(elapsed, 1), rss))
            except OSError:  # it exited between two calls
                pass
            time.sleep(poll_seconds)
    return {"peak_rss_mib": peak, "returncode": child.returncode, "seconds": time.perf_counter() - start, "rss_samples": samples}


def main_job_command(*, out: str, sizes: MemorySizes, env_id: str, device: str = "cpu", threads: int = 2) -> list[str]:
    """The README's main job (``rlhf-gym train --agent ppo ...``) as an argument list, run with this Python.

    Example:
        >>> " ".join(main_job_command(out="OUT", sizes=QUICK, env_id="RLHF-Summarize-v0")[3:])
        'train --agent ppo --env RLHF-Summarize-v0 --total-steps 2048 --seed 0 --out OUT --device cpu --threads 2 --paired-posts 0'
    """
    command = [sys.executable, "-m", "rlhf_gym.cli", "train", "--agent", "ppo", "--env", env_id,
               "--total-steps", str(sizes.total_steps), "--seed", "0", "--out", out, "--device", device, "--threads", str(threads)]
    if sizes.paired_posts is not None:
        command += ["--paired-posts", str(sizes.paired_posts)]
    return command


def main_job_peak(*, sizes: MemorySizes, env_id: str, device: str = "cpu", threads: int = 2) -> dict[str, Any]:
    """Peak RSS of the main job, run into a temporary folder (removed after)."""
    with tempfile.TemporaryDirectory(prefix="rlhf-gym-bench-") as folder:
        command = main_job_command(out=str(Path(folder) / "run"), sizes=sizes, env_id=env_id, device=device, threads=threads)
        log_path = Path(folder) / "job.log"
        result = peak_rss_of(command, timeout=sizes.timeout, log_path=log_path)
        if result["returncode"] != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"the main job exited with {result['returncode']}: {' | '.join(tail)}")
    shown = ["rlhf-gym", *command[3:]]
    shown[shown.index("--out") + 1] = "TMP/run"
    return {**result, "command": " ".join(shown)}


def rss_slope(episodes: Sequence[float], rss_mib: Sequence[float], skip: float = 0.1) -> float:
    """Least-squares slope of RSS in MiB per 1k episodes, past the first ``skip`` of the episodes.

    Example:
        >>> round(rss_slope([0, 1000, 2000, 3000, 4000], [500, 900, 902, 904, 906]), 3)  # the jump is warm-up
        2.0
    """
    x, y = np.asarray(episodes, dtype=float), np.asarray(rss_mib, dtype=float)
    keep = x >= x.max() * skip if x.max() > 0 else np.ones_like(x, dtype=bool)
    if keep.sum() < 2:
        raise ValueError(f"need at least 2 RSS samples past the first {skip:.0%} of the run, got {int(keep.sum())}")
    return float(np.polyfit(x[keep] / 1000.0, y[keep], 1)[0])


@torch.no_grad()
def env_rss_over_run(
    *, sizes: MemorySizes, env_id: str, device: str = "cpu", seed: int = 0, env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Step the env (``env_kwargs`` on top of the shipped one) with uniform random actions for
    ``sizes.episodes`` episodes; RSS along the way."""
    device_ = torch.device(device)
    env = gym.make_vec(env_id, num_envs=sizes.num_envs, device=device_, **(env_kwargs or {})).unwrapped
    generator = torch.Generator(device_).manual_seed(seed)
    env.reset(seed=seed)
    steps = -(-sizes.episodes * env.max_new_tokens // sizes.num_envs)  # random episodes last ~max_new_tokens
    every = max(steps // sizes.samples, 1)
    episodes, rss = [0.0], [resident_mib()]
    ended = torch.zeros((), dtype=torch.long, device=device_)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        actions = torch.randint(0, env.vocab_size, (env.num_envs,), generator=generator, device=device_)
        _, _, terminated, truncated, _ = env.step(actions)
        ended += (terminated | truncated).sum()
        if step % every == 0 or step == steps:
            episodes.append(float(ended))
            rss.append(resident_mib())
    synchronize(device_)
    seconds = time.perf_counter() - start
    env.close()
    slope = rss_slope(episodes, rss)
    result = {
        "num_envs": sizes.num_envs,
        "episodes": int(episodes[-1]),
        "steps": steps,
        "seconds": seconds,
        "first_mib": rss[0],
        "last_mib": rss[-1],
        "max_mib": max(rss),
        "slope_mib_per_1k_episodes": slope,
        "flat": abs(slope) < FLAT_SLOPE_MIB_PER_1K,
        "samples": [[e, round(r, 1)] for e, r in zip(episodes, rss)],
    }
    if device_.type == "cuda":
        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device_) / MIB
    return result


def measure_memory(
    *, quick: bool, env_id: str, device: str = "cpu", threads: int = 2, sizes: MemorySizes | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Both memory figures; a figure that fails records its error and the other still runs."""
    sizes = sizes or (QUICK if quick else FULL)
    results: dict[str, Any] = {"env": env_id, "device": device}
    headline = []
    log(f"memory: the main job ({sizes.total_steps} env steps) in a child process ...")
    try:
        job = main_job_peak(sizes=sizes, env_id=env_id, device=device, threads=threads)
        results["main_job"] = job
        log(f"memory: main job peak RSS {job['peak_rss_mib']:,.0f} MiB ({job['seconds']:.0f} s): {job['command']}")
        headline.append({"figure": f"Peak RSS of the main job ({sizes.total_steps:,} env steps)", "ratio": None,
                         "value": f"{job['peak_rss_mib']:,.0f} MiB", "goal": None, "met": None, "detail": job["command"]})
    except (OSError, RuntimeError, TimeoutError) as error:
        results["main_job"] = {"error": f"{type(error).__name__}: {error}"}
        log(f"memory: main job failed: {results['main_job']['error']}")
    log(f"memory: {sizes.episodes} random episodes of a TokenVectorEnv (N={sizes.num_envs}) ...")
    try:
        run = env_rss_over_run(sizes=sizes, env_id=env_id, device=device, env_kwargs={"dataset": prompt_pool(env_id)})
        results["env_run"] = run
        log(f"memory: env run RSS {run['first_mib']:,.0f} -> {run['last_mib']:,.0f} MiB (max {run['max_mib']:,.0f}), "
            f"slope {run['slope_mib_per_1k_episodes']:+.2f} MiB per 1k episodes over {run['episodes']} episodes")
        headline.append({
            "figure": f"RSS slope over {run['episodes']:,} random episodes (N={run['num_envs']})", "ratio": None,
            "value": f"{run['slope_mib_per_1k_episodes']:+.2f} MiB per 1k episodes",
            "goal": f"flat (|slope| < {FLAT_SLOPE_MIB_PER_1K:g})", "met": run["flat"],
            "detail": f"RSS {run['first_mib']:,.0f} -> {run['last_mib']:,.0f} MiB, max {run['max_mib']:,.0f}",
        })
    except OSError as error:
        results["env_run"] = {"error": f"{type(error).__name__}: {error}"}
        log(f"memory: env run failed: {results['env_run']['error']}")
    results["headline"] = headline
    return results


__all__ = [
    "MemorySizes",
    "env_rss_over_run",
    "main_job_command",
    "main_job_peak",
    "measure_memory",
    "high_water_mib",
    "peak_rss_of",
    "resident_mib",
    "rss_slope",
]

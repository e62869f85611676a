"""The env's step speed at two git revisions, interleaved: the before/after ratio of a change to the env.

`benchmarks/wins.py` measures a change by switching it off in-process; a change spread over
the env's step (the prompt token cache, the step's one device read, the direct decode) has
no switch, so here each side is the env *as committed* at a revision. Each revision is
checked out into a temporary `git worktree` and run in its own worker process with that
worktree first on ``PYTHONPATH`` (the worker prints which ``rlhf_gym`` it imported). The
harness is the same on both sides and comes from this file, not from the revisions: P1's
bookkeeping setting of `rlhf-gym bench` (`gym.make_vec` of the registered env, a constant
reward, no gold judge, a pool of the task's first 4,096 train prompts, uniform random
actions after a stagger that spreads episode ends evenly). Each worker builds its env once,
staggers and warms it, then times runs of ``steps`` vector steps on request; the runs
alternate A B A B and the figure is the median of the pairwise ratios
(`rlhf_gym.bench.interleave.compare`).

    python benchmarks/env_step_revisions.py --before 82ea2c3 --after HEAD --num-envs 256
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tyro

from rlhf_gym.bench.interleave import Sample, Side, compare

WORKER = r'''
import json, sys, time
import numpy as np, torch, gymnasium as gym
torch.set_num_threads(int(sys.argv[4]))
import rlhf_gym
from rlhf_gym.registration import get_task
env_id, num_envs, pool_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

class ConstantReward:  # scores every response 0 (a RewardModel)
    def score(self, prompts, responses):
        return torch.zeros(len(responses))

class PromptPool:  # already generated prompts: the world's generator is not timed
    def __init__(self, prompts): self.prompts = prompts
    def __len__(self): return len(self.prompts)
    def get_many(self, indices): return [self.prompts[i] for i in indices]

source = get_task(env_id).prompt_source("train")
pool = PromptPool(tuple(source.get_many(list(range(min(pool_size, len(source)))))))
env = gym.make_vec(env_id, num_envs=num_envs, reward_model=ConstantReward(), dataset=pool).unwrapped
horizon, vocab, eos = env.max_new_tokens, env.vocab_size, env.eos_token_id
stagger = np.random.default_rng([0, 2**31]).integers(0, vocab, size=(horizon, num_envs))
stagger[(np.arange(num_envs) * horizon) // num_envs, np.arange(num_envs)] = eos
env.reset(seed=0)
for actions in torch.as_tensor(stagger):
    env.step(actions)
print(json.dumps({"ready": rlhf_gym.__file__}), flush=True)
for line in sys.stdin:
    index, steps = json.loads(line)
    actions = torch.as_tensor(np.random.default_rng([0, abs(index), int(index < 0)]).integers(0, vocab, size=(steps, num_envs)))
    start = time.perf_counter()
    for step_actions in actions:
        env.step(step_actions)
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
'''


@dataclass
class Config:
    before: str = "HEAD~1"  # git revision of side B
    after: str = "HEAD"  # git revision of side A (the ratio is A over B)
    env: str = "RLHF-Summarize-v0"
    num_envs: int = 256
    steps: int = 400  # vector steps per timed run
    pairs: int = 7
    warmup: int = 1
    pool_size: int = 4096  # prompts in the pool (fewer: more recurrence)
    threads: int = 2
    json_out: str | None = None


class Worker:
    """A worker process running the env of one worktree; `run` times one run of it."""

    def __init__(self, worktree: Path, config: Config) -> None:
        env = {**os.environ, "PYTHONPATH": f"{worktree}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, config.env, str(config.num_envs), str(config.pool_size), str(config.threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=worktree,
        )
        ready = json.loads(self._read())
        self.module = ready["ready"]
        if not self.module.startswith(str(worktree)):
            raise RuntimeError(f"the worker imported rlhf_gym from {self.module}, not from the worktree {worktree}")
        self.steps = config.steps

    def _read(self) -> str:
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the worker exited with code {self.process.wait()}")
        return line

    def run(self, index: int, num_envs: int) -> Sample:
        self.process.stdin.write(json.dumps([index, self.steps]) + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        seconds = json.loads(self._read())["seconds"]
        return Sample(work=float(self.steps * num_envs), seconds=seconds)

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(timeout=60)


def main(config: Config) -> None:
    repo = Path(subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip())
    with tempfile.TemporaryDirectory(prefix="env-step-revisions-") as scratch:
        worktrees, workers = [], []
        try:
            for name, revision in (("after", config.after), ("before", config.before)):
                commit = subprocess.check_output(["git", "-C", str(repo), "rev-parse", "--short", revision], text=True).strip()
                path = Path(scratch) / name
                subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "-q", str(path), commit], check=True)
                worktrees.append((path, commit))
                workers.append(Worker(path, config))
            a, b = workers
            comparison = compare(
                Side(f"after ({worktrees[0][1]})", lambda i: a.run(i, config.num_envs)),
                Side(f"before ({worktrees[1][1]})", lambda i: b.run(i, config.num_envs)),
                pairs=config.pairs, warmup=config.warmup,
            )
        finally:
            for worker in workers:
                worker.close()
            for path, _ in worktrees:
                subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], check=False)
    print(f"{config.env} N={config.num_envs}, constant reward, pool of {config.pool_size} prompts: "
          f"{comparison.a} {comparison.a_rate:,.0f} sub-env steps/s, {comparison.b} {comparison.b_rate:,.0f}; "
          f"ratio {comparison.ratio:.2f}x (pairs {', '.join(f'{r:.2f}' for r in comparison.ratios)})")
    if config.json_out:
        Path(config.json_out).write_text(json.dumps({"config": vars(config), **comparison.to_json()}, indent=1))


if __name__ == "__main__":
    main(tyro.cli(Config))

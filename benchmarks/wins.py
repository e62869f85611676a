"""Before/after ratio of each speed change of issue 28, side by side in one process.

Each change is switched off on the "before" side by putting back what it replaced, and both
sides run interleaved (`rlhf_gym.bench.interleave.compare`: the median of >= 5 pairwise
ratios after a warm-up pair). The changes:

- ``batch-scoring``: the rollout scores its batch in one reward call when the last row ends
  (`collect_episodes(score_together=True)`), against one call per step in which rows end;
- ``prefill-trim``: the prefill skips prompt columns that are padding in every row, against
  prefilling the env's whole prompt block;
- ``multinomial``: `multinomial_one`, against ``torch.multinomial`` (the same tokens);
- ``rollout-all``: the three together: the rollout as it is against the rollout before;
- ``row-sampling``: the rollout sampling each token by inverting the row's CDF at one
  uniform draw (`collect_episodes` ``rows=``, what PPO, RLOO and GRPO train with), against
  `multinomial_one` (an exponential draw per vocabulary entry);
- ``update-trim``: one PPO minibatch's forward and backward through the policy's log-probs
  and the critic's values skipping response columns after every row's end (and the
  entropies without a gradient), against the full response block.

Work: new tokens per second for the rollouts, minibatches per second for the update. The
rollouts are `collect_episodes` on the shipped env with the SFT policy, rewards and gold
included (the env's own scoring), 64 rows: the README main job's batch.

    python benchmarks/wins.py                      # every change, RLHF-Summarize-v0
    python benchmarks/wins.py --changes batch-scoring --env RLHF-Dialogue-v0 --pairs 7
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch
import tyro

import rlhf_gym.agents.value_model as value_module
import rlhf_gym.lm.policy as policy_module
from rlhf_gym.agents.value_model import ValueModel
from rlhf_gym.bench.interleave import Sample, Side, compare
from rlhf_gym.env.rollout import collect_episodes
from rlhf_gym.registration import get_task

CHANGES = ("batch-scoring", "prefill-trim", "multinomial", "rollout-all", "row-sampling", "update-trim")


@dataclass
class Config:
    env: str = "RLHF-Summarize-v0"  # registered env id
    changes: list[str] = field(default_factory=lambda: list(CHANGES))  # which before/after pairs to run
    num_envs: int = 64  # rollout batch (the main job's)
    minibatch: int = 16  # update rows per forward/backward (the main job's 64 / 4)
    pairs: int = 5  # timed pairs per change (after one warm-up pair)
    threads: int = 2  # torch threads
    seed: int = 0
    json_out: str | None = None  # optional path for the results


@contextlib.contextmanager
def before(change: str) -> Iterator[dict[str, Any]]:
    """Put back what ``change`` replaced, for the duration; yields collect_episodes' arguments."""
    patches: list[tuple[object, str, object]] = []

    def patch(owner: object, name: str, value: object) -> None:
        patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    arguments: dict[str, Any] = {"score_together": True, "rows": None}
    if change in ("batch-scoring", "rollout-all"):
        arguments["score_together"] = False
    if change in ("prefill-trim", "rollout-all"):
        patch(policy_module.CausalLMPolicy, "prefill", policy_module.CausalLMPolicy._prefill)
    if change in ("multinomial", "rollout-all"):
        patch(policy_module, "multinomial_one", lambda probs, generator=None: torch.multinomial(probs, 1, generator=generator)[:, 0])
    if change == "update-trim":
        def untrimmed(input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int):
            return input_ids, attention_mask, 0
        patch(policy_module, "trim_shared_right_padding", untrimmed)
        patch(value_module, "trim_shared_right_padding", untrimmed)
    try:
        yield arguments
    finally:
        for owner, name, value in reversed(patches):
            setattr(owner, name, value)


def main(config: Config) -> None:
    unknown = sorted(set(config.changes) - set(CHANGES))
    if unknown:
        raise SystemExit(f"wins.py: unknown changes {unknown}; expected some of {list(CHANGES)}")
    torch.set_num_threads(config.threads)
    task = get_task(config.env)
    env = gym.make_vec(config.env, num_envs=config.num_envs, autoreset_mode="disabled")
    policy = task.sft_policy("cpu", task.temperature)
    value = ValueModel.create("preference-model", env.reward_model, policy, env.tokenizer, reward_is_preference=True)
    width = env.max_prompt_tokens
    batch = collect_episodes(env, policy, seed=config.seed, generator=torch.Generator().manual_seed(config.seed))

    def rollout(change: str, is_before: bool) -> Callable[[int], Sample]:
        def run(index: int) -> Sample:
            seed = config.seed + 1 + max(index, 0)  # a warm-up run reuses the first seed
            after = {"score_together": True, "rows": (0, config.num_envs) if change == "row-sampling" else None}
            with before(change) if is_before else contextlib.nullcontext(after) as arguments:
                start = time.perf_counter()
                episodes = collect_episodes(env, policy, seed=seed, generator=torch.Generator().manual_seed(seed), **arguments)
                return Sample(float(episodes.response_mask.sum()), time.perf_counter() - start)
        return run

    def update(change: str, is_before: bool) -> Callable[[int], Sample]:
        def run(index: int) -> Sample:
            order = torch.randperm(config.num_envs, generator=torch.Generator().manual_seed(max(index, 0)))
            with before(change) if is_before else contextlib.nullcontext():
                start = time.perf_counter()
                for first in range(0, config.num_envs, config.minibatch):
                    chosen = order[first : first + config.minibatch]
                    ids, mask = batch.input_ids[chosen], batch.attention_mask[chosen]
                    logprobs, _ = policy.token_logprobs(ids, mask, width)
                    values = value(ids, mask, width)
                    response = batch.response_mask[chosen].float()
                    ((logprobs * response).sum() + (values * response).sum()).backward()
                policy.model.zero_grad(set_to_none=True)
                value.zero_grad(set_to_none=True)
                return Sample(float(config.num_envs // config.minibatch), time.perf_counter() - start)
        return run

    results = {}
    for change in config.changes:
        make = update if change == "update-trim" else rollout
        comparison = compare(Side("after", make(change, False)), Side("before", make(change, True)), pairs=config.pairs)
        unit = "minibatches/s" if change == "update-trim" else "new tokens/s"
        print(f"{change:14s} after/before {comparison.ratio:.3f}x  (pairs {', '.join(f'{r:.3f}' for r in comparison.ratios)}; "
              f"after {comparison.a_rate:,.1f} {unit}, before {comparison.b_rate:,.1f})", flush=True)
        results[change] = comparison.to_json()
    if config.json_out:
        with open(config.json_out, "w") as handle:
            json.dump({"env": config.env, "num_envs": config.num_envs, "threads": config.threads, "changes": results}, handle, indent=2)


if __name__ == "__main__":
    main(tyro.cli(Config))

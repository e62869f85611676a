"""P1: the env's own cost, `TokenVectorEnv` against Gymnasium's ``SyncVectorEnv`` of N single envs.

Both sides are built by ``gym.make_vec`` from the same registered env id: ours in its default
vector mode, the other with ``vectorization_mode="sync"`` and ``SAME_STEP`` autoreset (the
mode ours defaults to), over N ``gym.make`` single envs. Both receive the same reward-model
object and the same stream of random actions, so they play the same episodes step for step.
The work is sub-env steps (N per vector step); the figure is the median of the pairwise
ratios of steps per second (`rlhf_gym.bench.interleave`).

Each side's timed run lasts about ``target_seconds``: its steps per run are set from its
own untimed stagger (below), so ours runs ~100x more steps than ``SyncVectorEnv`` in the
same time. Equal work instead would leave our side a few milliseconds per run, which one
time slice given to a competing process on these shared machines can double.

Three variants:

- ``bookkeeping``: a constant reward (`ConstantReward`, zeros) and no gold judge, so what is
  timed is the env's bookkeeping alone: actions checked and written, flags, the decode of
  finished responses, infos, resets (drawing, tokenising and writing prompts, from a pool of
  already generated ones: `PromptPool`). Goal: >= 100x at N=256. The pool's 4,096 prompts
  recur, so most resets find their prompt's ids in the env's prompt token cache
  (`rlhf_gym.env.prompt_tokens`); the hit rate of each side is reported.
- ``fresh-prompts``: the same with the cache off on both sides (``prompt_cache_size=0``):
  every reset tokenises its prompt, as with a procedural source whose prompts never recur.
  The tokenizer's work per reset is then the same on both sides and bounds the ratio.
- ``shipped``: the task's shipped preference model and gold judge, as users step the env;
  the share of each side's time spent in the reward model and the gold judge is reported
  (`scoring_clock`).

Random actions: the shipped vocabulary has ~1.9k tokens, so a uniform action is EOS about
once in 2k steps and nearly every episode ends by truncation at ``max_new_tokens``. Started
together, all N episodes would end in the same step, and a short timed run would hold all
of the resets or none. So each pair of envs is first *staggered* (untimed): during one
episode length, sub-env i writes EOS at step ``i * T // N``, after which episode ends are
spread evenly, about N / T per vector step, as in a long-running vector env. Every timed
run of either side then holds the same mix of steps and resets, whatever its length.

On CUDA, `bookkeeping_share` also reports the env's bookkeeping as a share of a step with
the shipped preference model at N=4096 (our env against itself: constant reward, then the
shipped one), where ``SyncVectorEnv`` is far too slow to run.

    rlhf-gym bench --parts p1            # N = 16, 64, 256, 1024
    rlhf-gym bench --parts p1 --quick    # N = 64, 256
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from rlhf_gym.bench.interleave import MIN_PAIRS, Comparison, Sample, Side, compare
from rlhf_gym.env.prompts import Prompt
from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.registration import get_task

BOOKKEEPING_GOAL = 100.0  # issue 28: TokenVectorEnv >= 100x SyncVectorEnv at N=256, bookkeeping only
GOAL_NUM_ENVS = 256
VARIANTS = ("bookkeeping", "fresh-prompts", "shipped")

Log = Callable[[str], None]


class ConstantReward:
    """A `rlhf_gym.rewards.reward_model.RewardModel` that scores every response 0.

    Example:
        >>> ConstantReward().score(["a prompt", "another"], ["a response", "another"]).tolist()
        [0.0, 0.0]
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        return torch.zeros(len(responses), device=self.device)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer stopped after it counts it (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class ScoringClock:
    """Seconds spent in the reward model and the gold judge since the last `reset`."""

    seconds: float = 0.0
    calls: int = 0

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def timed(self, function: Callable[..., Any], device: torch.device) -> Callable[..., Any]:
        """``function``, its calls added to the clock (on CUDA, until the device has done their work)."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                synchronize(device)
                self.seconds += time.perf_counter() - start
                self.calls += 1

        return wrapper


@contextmanager
def scoring_clock(cores: Sequence[TokenVectorEnv]) -> Iterator[ScoringClock]:
    """Time every call the ``cores`` make to their reward model's ``score`` and their gold judge.

    The reward model's bound ``score`` is replaced on the instance (once per distinct model,
    however many envs share it) and each core's ``gold_judge`` attribute is wrapped; both are
    restored on exit. On CUDA each call waits for the device's work, so its kernels count
    here rather than in the next step (the env reads the scores back to the host right
    after anyway).

    Example:
        >>> class Env:  # stands in for a TokenVectorEnv
        ...     device, reward_model = torch.device("cpu"), ConstantReward()
        ...     gold_judge = staticmethod(lambda prompts, responses: [1.0])
        >>> env = Env()
        >>> with scoring_clock([env]) as clock:
        ...     _ = env.reward_model.score(["p"], ["r"]), env.gold_judge(["p"], ["r"])
        >>> clock.calls, "score" in vars(env.reward_model)
        (2, False)
    """
    clock = ScoringClock()
    patched_models: dict[int, tuple[Any, Any]] = {}  # id -> (model, its own instance attribute or None)
    patched_judges: list[tuple[Any, Any]] = []
    try:
        for core in cores:
            model = core.reward_model
            if id(model) not in patched_models:
                patched_models[id(model)] = (model, vars(model).get("score"))
                model.score = clock.timed(model.score, core.device)
            if core.gold_judge is not None:
                patched_judges.append((core, core.gold_judge))
                core.gold_judge = clock.timed(core.gold_judge, core.device)
        yield clock
    finally:
        for model, own in patched_models.values():
            if own is None:
                del model.score
            else:
                model.score = own
        for core, judge in patched_judges:
            core.gold_judge = judge


def env_kwargs(
    env_id: str, *, reward_model: Any, gold: bool, device: str | torch.device = "cpu", max_new_tokens: int | None = None,
    prompt_cache: bool = True,
) -> dict[str, Any]:
    """``gym.make_vec`` keyword arguments of one side: the given reward model, with or without the gold judge.

    Without gold the env gets a `PromptPool` of the task's first ``POOL_SIZE`` train prompts
    (``dataset=``), for which it builds no gold judge (`rlhf_gym.worlds.assembly.make_vector_env`):
    the world's procedural prompt generation (about 1 ms of Python per new prompt) is the
    world's cost, the same on both sides, and is left out of the bookkeeping; drawing,
    tokenising and writing the prompts at each reset stay in. ``prompt_cache=False`` turns
    the env's prompt token cache off (every reset tokenises).
    """
    kwargs: dict[str, Any] = {"reward_model": reward_model, "device": device}
    if not prompt_cache:
        kwargs["prompt_cache_size"] = 0
    if max_new_tokens is not None:
        kwargs["max_new_tokens"] = max_new_tokens
    if not gold:
        kwargs["dataset"] = prompt_pool(env_id)
    return kwargs


POOL_SIZE = 4096


@dataclass(frozen=True)
class PromptPool:
    """A `rlhf_gym.env.prompts.PromptSource` over a fixed tuple of already generated prompts."""

    prompts: tuple[Prompt, ...]

    def __len__(self) -> int:
        return len(self.prompts)

    def get_many(self, indices: Sequence[int]) -> list[Prompt]:
        return [self.prompts[i] for i in indices]


_POOLS: dict[str, PromptPool] = {}


def prompt_pool(env_id: str, size: int = POOL_SIZE) -> PromptPool:
    """The first ``size`` train prompts of ``env_id``'s task, generated once per process and shared (read-only)."""
    key = f"{env_id}:{size}"
    if key not in _POOLS:
        source = get_task(env_id).prompt_source("train")
        _POOLS[key] = PromptPool(tuple(source.get_many(list(range(min(size, len(source)))))))
    return _POOLS[key]


def make_pair(
    env_id: str,
    num_envs: int,
    *,
    reward_model: Any,
    gold: bool,
    device: str | torch.device = "cpu",
    max_new_tokens: int | None = None,
    prompt_cache: bool = True,
) -> tuple[TokenVectorEnv, gym.vector.SyncVectorEnv]:
    """Our vector env and a ``SyncVectorEnv`` (``SAME_STEP``) of ``num_envs`` single envs, built alike.

    Args:
        reward_model: the one reward-model object both sides score with (``reward_model=``).
        gold: keep the task's gold judge (see `env_kwargs`).
        max_new_tokens: the episode length T (None: the task's).
        prompt_cache: keep the env's prompt token cache on (both sides).
    """
    def kwargs() -> dict[str, Any]:
        return env_kwargs(env_id, reward_model=reward_model, gold=gold, device=device, max_new_tokens=max_new_tokens,
                          prompt_cache=prompt_cache)

    ours = gym.make_vec(env_id, num_envs=num_envs, **kwargs()).unwrapped
    sync = gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs(),
    )
    return ours, sync


def sync_cores(sync: gym.vector.SyncVectorEnv) -> list[TokenVectorEnv]:
    """The one-row `TokenVectorEnv` inside each single env of ``sync``."""
    return [env.unwrapped.vector_env for env in sync.envs]


def random_actions(seed: int, index: int, steps: int, num_envs: int, vocab_size: int) -> np.ndarray:
    """(steps, N) uniform token ids for run ``index`` (negative: warm-up); both sides draw the same stream."""
    rng = np.random.default_rng([seed, abs(index), int(index < 0)])
    return rng.integers(0, vocab_size, size=(steps, num_envs), dtype=np.int64)


def stagger_actions(seed: int, num_envs: int, horizon: int, vocab_size: int, eos: int) -> np.ndarray:
    """(T, N) random ids where sub-env i writes EOS at step ``i * T // N``: episode ends spread evenly after it.

    Example:
        >>> actions = stagger_actions(0, num_envs=4, horizon=8, vocab_size=50, eos=0)
        >>> [int(np.flatnonzero(actions[:, i] == 0).min()) for i in range(4)]
        [0, 2, 4, 6]
    """
    actions = np.random.default_rng([seed, 2**31]).integers(0, vocab_size, size=(horizon, num_envs))
    offsets = (np.arange(num_envs) * horizon) // num_envs  # (N,) in [0, T)
    actions[offsets, np.arange(num_envs)] = eos
    return actions.astype(np.int64)


class RandomStepper:
    """One side of a P1 comparison: a vector env stepped with given actions, each run continuing
    where the previous one stopped (no reset between runs).

    Args:
        name: the side's name in the results.
        env: the vector env (ours or ``SyncVectorEnv``), reset by `stagger`.
        device: where our env's tensors live (actions are handed over as tensors there);
            None for ``SyncVectorEnv``, which takes numpy actions.
        clock: the `ScoringClock` reset at the start of each run.
    """

    def __init__(self, name: str, env: gym.vector.VectorEnv, *, device: torch.device | None, clock: ScoringClock) -> None:
        self.name, self.env, self.device, self.clock = name, env, device, clock

    def _step_all(self, actions: np.ndarray) -> tuple[float, int]:
        """Step once per row of ``actions`` (T, N): seconds taken and episodes ended."""
        batches = torch.as_tensor(actions, device=self.device) if self.device is not None else actions
        device = self.device or torch.device("cpu")
        flags = []
        synchronize(device)
        start = time.perf_counter()
        for step_actions in batches:
            _, _, terminated, truncated, _ = self.env.step(step_actions)
            flags.append((terminated, truncated))  # references only: counted after the timer stops
        synchronize(device)
        seconds = time.perf_counter() - start
        ended = sum(int((t | u).sum()) for t, u in flags)
        return seconds, ended

    def stagger(self, seed: int, actions: np.ndarray) -> float:
        """Reset with ``seed`` and play `stagger_actions`; returns the seconds the steps took."""
        self.env.reset(seed=seed)
        return self._step_all(actions)[0]

    def run(self, actions: np.ndarray) -> Sample:
        """A timed run: work is sub-env steps; extra holds episodes ended and seconds spent scoring."""
        self.clock.reset()
        seconds, ended = self._step_all(actions)
        return Sample(work=float(actions.size), seconds=seconds,
                      extra={"episodes": float(ended), "scoring_seconds": self.clock.seconds})


@dataclass(frozen=True)
class P1Sizes:
    """How much P1 runs.

    Attributes:
        num_envs: N of the bookkeeping comparison.
        fresh_num_envs: N of the comparison without the prompt token cache.
        shipped_num_envs: N of the comparison with the shipped preference model and gold judge.
        share_num_envs: N of `bookkeeping_share` (our env against itself); None skips it.
        target_seconds: a timed run of each side should take about this long; its steps
            per run are set from its untimed stagger.
        pairs, warmup: of `rlhf_gym.bench.interleave.compare`.
        max_new_tokens: the episode length T (None: the task's).
    """

    num_envs: tuple[int, ...]
    shipped_num_envs: tuple[int, ...]
    share_num_envs: int | None
    target_seconds: float
    fresh_num_envs: tuple[int, ...] = ()
    pairs: int = MIN_PAIRS
    warmup: int = 1
    max_new_tokens: int | None = None


QUICK = P1Sizes(num_envs=(64, 256), shipped_num_envs=(256,), share_num_envs=None, target_seconds=0.6, fresh_num_envs=(256,))
FULL = P1Sizes(num_envs=(16, 64, 256, 1024), shipped_num_envs=(16, 64, 256, 1024), share_num_envs=1024, target_seconds=2.0,
               fresh_num_envs=(256,))


def sizes_for(quick: bool, device: str | torch.device) -> P1Sizes:
    """`QUICK` or `FULL`; on CUDA the share is measured at N=4096."""
    sizes = QUICK if quick else FULL
    if torch.device(device).type == "cuda":
        sizes = replace(sizes, share_num_envs=4096)
    return sizes


def steps_for(stagger_seconds: float, horizon: int, target_seconds: float) -> int:
    """Vector steps per timed run so a side that took ``stagger_seconds`` for ``horizon`` steps runs ~``target_seconds``.

    Example:
        >>> steps_for(stagger_seconds=6.4, horizon=64, target_seconds=1.0)  # 0.1 s per step
        10
    """
    per_step = max(stagger_seconds, 1e-9) / horizon
    return int(min(max(round(target_seconds / per_step), 2), 16 * horizon))


@dataclass
class Pairing:
    """Two steppers compared at one N, once staggered."""

    num_envs: int
    steps: tuple[int, int]  # vector steps per timed run of A and of B
    comparison: Comparison
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "num_envs": self.num_envs,
            "a_steps_per_run": self.steps[0],
            "b_steps_per_run": self.steps[1],
            "a": c.a, "b": c.b,
            "a_steps_per_s": c.a_rate,
            "b_steps_per_s": c.b_rate,
            "ratio": c.ratio,
            "ratios": c.ratios,
            "a_scoring_share": _median_share(c.a_samples),
            "b_scoring_share": _median_share(c.b_samples),
            "a_episodes_per_run": c.extra_median("a", "episodes"),
            "b_episodes_per_run": c.extra_median("b", "episodes"),
            **self.details,
            "samples": {"a": c.to_json()["a_samples"], "b": c.to_json()["b_samples"]},
        }


def _median_share(samples: Sequence[Sample]) -> float:
    return float(np.median([s.extra["scoring_seconds"] / s.seconds for s in samples]))


def compare_steppers(
    a: RandomStepper, b: RandomStepper, *, num_envs: int, vocab_size: int, eos: int, horizon: int, sizes: P1Sizes, seed: int,
) -> Pairing:
    """Stagger both sides (untimed), size each side's runs on its own stagger, then `compare` A against B."""
    stagger = stagger_actions(seed, num_envs, horizon, vocab_size, eos)
    steps = tuple(steps_for(side.stagger(seed, stagger), horizon, sizes.target_seconds) for side in (a, b))

    def side(stepper: RandomStepper, steps: int) -> Side:
        return Side(stepper.name, lambda index: stepper.run(random_actions(seed, index, steps, num_envs, vocab_size)))

    comparison = compare(side(a, steps[0]), side(b, steps[1]), pairs=sizes.pairs, warmup=sizes.warmup)
    return Pairing(num_envs=num_envs, steps=(steps[0], steps[1]), comparison=comparison)


def sync_comparison(
    env_id: str, num_envs: int, *, variant: str, sizes: P1Sizes, device: str | torch.device = "cpu", seed: int = 0,
    reward_model: Any = None,
) -> Pairing:
    """`TokenVectorEnv` (A) against ``SyncVectorEnv`` (B) at one N.

    Args:
        variant: ``"bookkeeping"`` (a `ConstantReward`, no gold judge), ``"fresh-prompts"``
            (the same without the prompt token cache) or ``"shipped"`` (the task's preference
            model and gold judge).
        reward_model: the ``"shipped"`` variant's model (None: load the task's); reuse one
            across N to load it once.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    device = torch.device(device)
    if variant == "shipped":
        reward_model, gold = reward_model or get_task(env_id).preference_model(device), True
    else:
        reward_model, gold = ConstantReward(device), False
    prompt_cache = variant != "fresh-prompts"
    ours, sync = make_pair(env_id, num_envs, reward_model=reward_model, gold=gold, device=device,
                           max_new_tokens=sizes.max_new_tokens, prompt_cache=prompt_cache)
    try:
        with scoring_clock([ours, *sync_cores(sync)]) as clock:
            pairing = compare_steppers(
                RandomStepper("TokenVectorEnv", ours, device=device, clock=clock),
                RandomStepper("SyncVectorEnv", sync, device=None, clock=clock),
                num_envs=num_envs, vocab_size=ours.vocab_size, eos=ours.eos_token_id, horizon=ours.max_new_tokens,
                sizes=sizes, seed=seed,
            )
    finally:
        ours.close()
        sync.close()
    pairing.details = {
        "variant": variant, "gold_judge": gold, "prompt_cache": prompt_cache,
        "a_prompt_cache_hit_rate": _hit_rate([ours]), "b_prompt_cache_hit_rate": _hit_rate(sync_cores(sync)),
    }
    return pairing


def _hit_rate(cores: Sequence[TokenVectorEnv]) -> float:
    """Share of the prompts the ``cores`` wrote (stagger, warm-up and timed runs) whose ids came from their caches."""
    hits = sum(core._prompt_tokens.hits for core in cores)
    served = hits + sum(core._prompt_tokens.misses for core in cores)
    return hits / served if served else 0.0


def bookkeeping_share(
    env_id: str, num_envs: int, *, sizes: P1Sizes, device: str | torch.device = "cpu", seed: int = 0, reward_model: Any = None,
) -> Pairing:
    """Our env with a constant reward and no gold judge (A) against our env as shipped (B), at one N.

    ``1 / ratio`` is the share of a shipped step that is the env's own bookkeeping.
    """
    device = torch.device(device)
    shipped_model = reward_model or get_task(env_id).preference_model(device)
    horizon = sizes.max_new_tokens
    bare = gym.make_vec(env_id, num_envs=num_envs, **env_kwargs(
        env_id, reward_model=ConstantReward(device), gold=False, device=device, max_new_tokens=horizon)).unwrapped
    shipped = gym.make_vec(env_id, num_envs=num_envs, **env_kwargs(
        env_id, reward_model=shipped_model, gold=True, device=device, max_new_tokens=horizon)).unwrapped
    try:
        with scoring_clock([bare, shipped]) as clock:
            pairing = compare_steppers(
                RandomStepper("bookkeeping only", bare, device=device, clock=clock),
                RandomStepper("shipped preference model", shipped, device=device, clock=clock),
                num_envs=num_envs, vocab_size=bare.vocab_size, eos=bare.eos_token_id, horizon=bare.max_new_tokens,
                sizes=sizes, seed=seed,
            )
    finally:
        bare.close()
        shipped.close()
    pairing.details = {"bookkeeping_share": 1.0 / pairing.comparison.ratio}
    return pairing


def env_bookkeeping(
    *, quick: bool, env_id: str, device: str = "cpu", seed: int = 0, sizes: P1Sizes | None = None, log: Log = print,
) -> dict[str, Any]:
    """P1: every N of `sizes_for`, both variants, and on CUDA the bookkeeping share at N=4096.

    Returns:
        The results: ``headline`` (the rows of the report's table), ``bookkeeping`` and
        ``shipped`` (one `Pairing` per N, A = ours, B = ``SyncVectorEnv``), and
        ``bookkeeping_share`` when measured.
    """
    sizes = sizes or sizes_for(quick, device)
    task = get_task(env_id)
    shipped_model = task.preference_model(torch.device(device)) if sizes.shipped_num_envs or sizes.share_num_envs else None
    results: dict[str, Any] = {
        "env": env_id,
        "device": str(device),
        "max_new_tokens": sizes.max_new_tokens or task.max_new_tokens,
        "note": "uniform random actions: EOS is ~1 in 2k tokens, so nearly every episode ends by truncation at "
                "max_new_tokens; the sub-envs are staggered first so that episode ends spread evenly over the steps",
        "bookkeeping": [],
        "fresh-prompts": [],
        "shipped": [],
    }
    headline = []
    for variant, sizes_n in (("bookkeeping", sizes.num_envs), ("fresh-prompts", sizes.fresh_num_envs),
                             ("shipped", sizes.shipped_num_envs)):
        for n in sizes_n:
            pairing = sync_comparison(env_id, n, variant=variant, sizes=sizes, device=device, seed=seed, reward_model=shipped_model)
            row = pairing.to_json()
            results[variant].append(row)
            log(f"P1 {variant:13s} N={n:5d}: TokenVectorEnv {row['a_steps_per_s']:12,.0f} steps/s, "
                f"SyncVectorEnv {row['b_steps_per_s']:10,.0f} steps/s, ratio {row['ratio']:7.1f}x "
                f"(scoring {row['a_scoring_share']:.0%} / {row['b_scoring_share']:.0%} of the time; prompt cache hits "
                f"{row['a_prompt_cache_hit_rate']:.0%} / {row['b_prompt_cache_hit_rate']:.0%})")
            headline.append(_headline_row(variant, row))
    if sizes.share_num_envs:
        pairing = bookkeeping_share(env_id, sizes.share_num_envs, sizes=sizes, device=device, seed=seed, reward_model=shipped_model)
        row = pairing.to_json()
        results["bookkeeping_share"] = row
        log(f"P1 share      N={sizes.share_num_envs:5d}: bookkeeping is {row['bookkeeping_share']:.0%} of a step "
            f"with the shipped preference model ({row['b_steps_per_s']:,.0f} vs {row['a_steps_per_s']:,.0f} steps/s)")
        headline.append({
            "figure": f"P1 env bookkeeping share of a step with the shipped reward, N={sizes.share_num_envs}",
            "ratio": None,
            "value": f"{row['bookkeeping_share']:.1%}",
            "goal": None,
            "met": None,
            "detail": f"{row['a_steps_per_s']:,.0f} steps/s bookkeeping only, {row['b_steps_per_s']:,.0f} with the shipped reward",
        })
    results["headline"] = headline
    return results


def _headline_row(variant: str, row: dict[str, Any]) -> dict[str, Any]:
    n = row["num_envs"]
    what = {
        "bookkeeping": "constant reward, no gold",
        "fresh-prompts": "constant reward, no gold, no prompt token cache (every reset tokenises)",
        "shipped": "shipped preference model and gold judge",
    }[variant]
    goal = BOOKKEEPING_GOAL if variant == "bookkeeping" and n == GOAL_NUM_ENVS else None
    detail = f"{row['a_steps_per_s']:,.0f} vs {row['b_steps_per_s']:,.0f} sub-env steps/s"
    if variant == "bookkeeping":
        detail += f"; prompt cache hits {row['a_prompt_cache_hit_rate']:.0%} (ours) and {row['b_prompt_cache_hit_rate']:.0%} (sync)"
    if variant == "shipped":
        detail += f"; scoring {row['a_scoring_share']:.0%} (ours) and {row['b_scoring_share']:.0%} (sync) of the time"
    return {
        "figure": f"P1 env steps/s, TokenVectorEnv / SyncVectorEnv, {what}, N={n}",
        "ratio": row["ratio"],
        "value": f"{row['ratio']:.1f}x",
        "goal": f">= {BOOKKEEPING_GOAL:g}x" if goal else None,
        "met": row["ratio"] >= goal if goal else None,
        "detail": detail,
    }


__all__ = [
    "ConstantReward",
    "P1Sizes",
    "ScoringClock",
    "bookkeeping_share",
    "env_bookkeeping",
    "env_kwargs",
    "make_pair",
    "scoring_clock",
    "sync_comparison",
]

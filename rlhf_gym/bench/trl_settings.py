"""One training comparison's settings, as our agent's config and as TRL's, and how they match.

A `TrainingSettings` fixes what both sides of a comparison train with: the task's shipped
SFT policy and preference model, prompts and completions per iteration, epochs,
minibatches, new tokens, temperature, learning rate and KL coefficient. `our_config` turns
it into our agent's config (evaluation, paired evaluation and checkpoints off, so an
iteration is the work TRL does), `trl_arguments` into the keyword arguments of TRL's config
class, and `our_effective` / `trl_effective` read the same quantities back from each side's
config object, so that `settings_table` can show them side by side. `KNOWN_DIFFERENCES`
lists what could not be matched.

How one of our iterations maps onto TRL:

- PPO (trl 1.12 ``PPOConfig``): one TRL "update" is one rollout of the batch and its epochs,
  as ours: ``per_device_train_batch_size`` = prompts, ``num_mini_batches`` and
  ``num_ppo_epochs`` as ours, ``response_length`` = new tokens, ``stop_token="eos"``.
- RLOO and GRPO (trl 1.16): the generation batch (``per_device_train_batch_size *
  steps_per_generation``, gradient accumulation 1) is ours, ``num_generations`` is the group
  size, ``steps_per_generation`` our minibatches per epoch and ``num_iterations`` our epochs.
  One of our iterations is then ``steps_per_generation * num_iterations`` TRL optimiser steps
  (`steps_per_iteration`).

Both sides see the same prompts in the same order: TRL's dataset is the prompts our
iteration k draws (`iteration_prompts`), in order and unshuffled.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALGORITHMS: tuple[str, ...] = ("ppo", "rloo", "grpo")

NEVER = 10**12
"""An evaluation or checkpoint cadence (iterations) and budget (env steps) no benchmark reaches."""

BENCH_NAMESPACE = "rlhf-bench"  # env ids registered with another response budget: "rlhf-bench/RLHF-Summarize-v0-T24"

EVAL_EPISODES = 2  # our agents' first evaluation (set-up, untimed) on as few episodes as it allows


@dataclass(frozen=True)
class TrainingSettings:
    """What both sides of one training comparison run with.

    Attributes:
        algorithm: ``"ppo"``, ``"rloo"`` or ``"grpo"``.
        num_prompts: prompts per iteration.
        group_size: completions per prompt (1 for PPO).
        max_new_tokens: response budget (TRL's ``response_length`` / ``max_completion_length``).
        num_epochs: passes over each batch.
        num_minibatches: minibatches per epoch (optimiser steps per epoch).
        learning_rate: the policy's step size.
        kl_coef: the KL coefficient (TRL's ``kl_coef`` / ``beta``).
        temperature: sampling and scoring temperature.
        iterations: iterations each side will run at most (TRL's dataset holds their prompts).
        env: the task's env id (its shipped SFT policy and preference model on both sides).
        seed: seeds prompts and sampling.
        device: torch device of both sides.
        threads: torch CPU threads of each side.
    """

    algorithm: str
    num_prompts: int
    group_size: int
    max_new_tokens: int
    num_epochs: int
    num_minibatches: int
    learning_rate: float
    kl_coef: float
    temperature: float
    iterations: int
    env: str = "RLHF-Summarize-v0"
    seed: int = 0
    device: str = "cpu"
    threads: int = 2

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        for name in ("num_prompts", "max_new_tokens", "num_epochs", "num_minibatches", "iterations", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if (self.algorithm == "ppo") != (self.group_size == 1) or self.group_size < 1:
            raise ValueError(f"group_size must be 1 for PPO and >= 2 for RLOO and GRPO, got {self.group_size} for {self.algorithm}")
        if self.episodes % self.num_minibatches != 0:
            raise ValueError(f"num_minibatches ({self.num_minibatches}) must divide the {self.episodes} episodes per iteration")

    @property
    def episodes(self) -> int:
        """Completions per iteration: ``num_prompts * group_size``."""
        return self.num_prompts * self.group_size

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingSettings:
        return cls(**data)


def steps_per_iteration(settings: TrainingSettings) -> int:
    """TRL trainer steps (``on_step_end`` calls) in one of our iterations.

    Example:
        >>> base = dict(num_prompts=4, max_new_tokens=8, learning_rate=1e-5, kl_coef=0.05, temperature=0.7, iterations=3)
        >>> steps_per_iteration(TrainingSettings("ppo", group_size=1, num_epochs=4, num_minibatches=4, **base))
        1
        >>> steps_per_iteration(TrainingSettings("grpo", group_size=4, num_epochs=2, num_minibatches=2, **base))
        4
    """
    return 1 if settings.algorithm == "ppo" else settings.num_epochs * settings.num_minibatches


def default_settings(algorithm: str, *, quick: bool, iterations: int, device: str = "cpu", threads: int = 2,
                     env: str = "RLHF-Summarize-v0") -> TrainingSettings:
    """The comparison's settings: our agent's defaults for the algorithm, at the issue's sizes.

    Full: PPO on 64 prompts with 4 epochs of 4 minibatches, RLOO and GRPO on 16 prompts x 4
    completions (64 episodes, as our PPO), all with the task's response budget (64 new
    tokens on Summarize). Quick: a quarter of the batch (16 episodes) and 24 new tokens.
    """
    from rlhf_gym.agents.grpo import GRPOConfig
    from rlhf_gym.agents.ppo import PPOConfig
    from rlhf_gym.agents.rloo import RLOOConfig
    from rlhf_gym.registration import get_task

    task = get_task(env)
    new_tokens = 24 if quick else task.max_new_tokens
    common = dict(max_new_tokens=new_tokens, temperature=task.temperature, iterations=iterations, env=env, device=device,
                  threads=threads)
    if algorithm == "ppo":
        ppo = PPOConfig()
        return TrainingSettings("ppo", num_prompts=16 if quick else ppo.num_envs, group_size=1, num_epochs=ppo.num_epochs,
                                num_minibatches=ppo.num_minibatches, learning_rate=ppo.learning_rate, kl_coef=ppo.kl_coef, **common)
    if algorithm == "rloo":
        rloo = RLOOConfig()
        return TrainingSettings("rloo", num_prompts=4 if quick else rloo.num_prompts, group_size=rloo.group_size, num_epochs=1,
                                num_minibatches=rloo.num_minibatches, learning_rate=rloo.learning_rate, kl_coef=rloo.kl_coef,
                                **common)
    if algorithm == "grpo":
        grpo = GRPOConfig()
        return TrainingSettings("grpo", num_prompts=4 if quick else grpo.num_prompts, group_size=grpo.group_size,
                                num_epochs=grpo.num_epochs, num_minibatches=grpo.num_minibatches, learning_rate=grpo.learning_rate,
                                kl_coef=grpo.kl_coef, **common)
    raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")


# Our side ---------------------------------------------------------------------------
def bench_env_id(settings: TrainingSettings) -> str:
    """The env id our agent trains on: the task's, or (another response budget) the task
    registered again in `BENCH_NAMESPACE` with ``max_new_tokens`` (in this process only)."""
    import gymnasium as gym

    from rlhf_gym.registration import get_task

    if settings.max_new_tokens == get_task(settings.env).max_new_tokens:
        return settings.env
    env_id = f"{BENCH_NAMESPACE}/{settings.env.removesuffix('-v0')}-T{settings.max_new_tokens}-v0"
    if env_id not in gym.registry:
        spec = gym.spec(settings.env)
        gym.register(id=env_id, entry_point=spec.entry_point, vector_entry_point=spec.vector_entry_point,
                     kwargs={**spec.kwargs, "max_new_tokens": settings.max_new_tokens}, max_episode_steps=None)
    return env_id


def our_config(settings: TrainingSettings, out: Path) -> Any:
    """Our agent's config for ``settings``: no evaluation, paired evaluation or checkpoint
    while timing (cadences of `NEVER`), a budget it never reaches (the worker stops it), run
    folder ``out`` (overwritten)."""
    from rlhf_gym.registration import get_task

    common = dict(
        env=bench_env_id(settings), total_steps=NEVER, seed=settings.seed, out=str(out), policy=str(get_task(settings.env).policy_path()),
        device=settings.device, threads=settings.threads, temperature=settings.temperature, learning_rate=settings.learning_rate,
        kl_coef=settings.kl_coef, eval_every=NEVER, eval_episodes=EVAL_EPISODES, paired_posts=0, checkpoint_every=NEVER, overwrite=True,
    )
    if settings.algorithm == "ppo":
        from rlhf_gym.agents.ppo import PPOConfig

        # missing_eos_penalty: our default 1.0, which TRL's PPO is given too.
        return PPOConfig(num_envs=settings.num_prompts, num_epochs=settings.num_epochs, num_minibatches=settings.num_minibatches,
                         **common)
    # TRL's RLOO and GRPO have no missing-EOS penalty: ours is off to match.
    group = dict(num_prompts=settings.num_prompts, group_size=settings.group_size, num_minibatches=settings.num_minibatches,
                 missing_eos_penalty=None, **common)
    if settings.algorithm == "rloo":
        from rlhf_gym.agents.rloo import RLOOConfig

        if settings.num_epochs != 1:
            raise ValueError(f"our RLOO takes one pass over each batch, got num_epochs={settings.num_epochs}")
        return RLOOConfig(**group)
    from rlhf_gym.agents.grpo import GRPOConfig

    return GRPOConfig(num_epochs=settings.num_epochs, **group)


def our_effective(algorithm: str, config: Any, max_new_tokens: int) -> dict[str, Any]:
    """The compared quantities, read from our agent's ``config`` (`settings_table`'s keys)."""
    ppo = algorithm == "ppo"
    prompts = config.num_envs if ppo else config.num_prompts
    group = 1 if ppo else config.group_size
    epochs = config.num_epochs if algorithm in ("ppo", "grpo") else 1
    return {
        "prompts per iteration": prompts,
        "completions per prompt": group,
        "episodes per iteration": prompts * group,
        "epochs": epochs,
        "minibatches per epoch": config.num_minibatches,
        "optimizer steps per iteration": epochs * config.num_minibatches,
        "max new tokens": max_new_tokens,
        "stop token": "EOS",
        "temperature": config.temperature,
        "learning rate": config.learning_rate,
        "KL coefficient": config.kl_coef,
        "missing-EOS penalty": config.missing_eos_penalty or 0.0,
        "precision": "fp32",
        "gradient checkpointing": False,
        "gradient-norm clip": config.max_grad_norm,
        "Adam epsilon": config.adam_eps,
        **({"critic": "preference model copy" if config.value_model == "preference-model" else "policy head",
            "clip range": config.clip_coef, "value clip range": config.value_clip_coef, "value loss weight": config.value_coef,
            "gamma": config.gamma, "GAE lambda": config.gae_lambda} if ppo else {}),
        **({"clip range": config.clip_coef} if algorithm == "grpo" else {}),
    }


# TRL's side -------------------------------------------------------------------------
def trl_arguments(settings: TrainingSettings, output_dir: Path) -> dict[str, Any]:
    """Keyword arguments of TRL's config class (``PPOConfig`` of trl 1.12, ``RLOOConfig`` or
    ``GRPOConfig`` of trl 1.16) for ``settings``; TRL is not imported."""
    from rlhf_gym.agents.ppo import PPOConfig

    ours = PPOConfig()
    common: dict[str, Any] = dict(
        output_dir=str(output_dir), seed=settings.seed, learning_rate=settings.learning_rate, temperature=settings.temperature,
        adam_epsilon=ours.adam_eps,
        bf16=False, fp16=False,  # TRL defaults to bf16 mixed precision; ours is fp32
        gradient_checkpointing=False,  # TRL's default is on; ours never recomputes activations
        use_cpu=settings.device == "cpu",
        lr_scheduler_type="constant",  # ours keeps its step size; TRL's default decays it linearly
        report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0,
    )
    if settings.algorithm == "ppo":
        return {
            **common,
            "per_device_train_batch_size": settings.num_prompts,
            "gradient_accumulation_steps": 1,
            "local_rollout_forward_batch_size": settings.num_prompts,  # one generate() call per batch, as ours
            "num_mini_batches": settings.num_minibatches,
            "num_ppo_epochs": settings.num_epochs,
            "total_episodes": settings.num_prompts * settings.iterations,
            "response_length": settings.max_new_tokens,
            "stop_token": "eos",
            "missing_eos_penalty": ours.missing_eos_penalty,
            "kl_coef": settings.kl_coef,
            "kl_estimator": "k1",  # ours: k1 per token in the reward (N+ #13)
            "cliprange": ours.clip_coef,
            "cliprange_value": ours.value_clip_coef,
            "vf_coef": ours.value_coef,
            "gamma": ours.gamma,
            "lam": ours.gae_lambda,
            "whiten_rewards": False,
            "num_sample_generations": 0,  # no sample tables during training
        }
    group = {
        **common,
        "per_device_train_batch_size": settings.episodes // settings.num_minibatches,
        "gradient_accumulation_steps": 1,
        "steps_per_generation": settings.num_minibatches,
        "num_iterations": settings.num_epochs,
        "num_generations": settings.group_size,
        "max_completion_length": settings.max_new_tokens,
        "beta": settings.kl_coef,
        "max_grad_norm": ours.max_grad_norm,
        "max_steps": settings.iterations * steps_per_iteration(settings),
        "shuffle_dataset": False,  # our iteration k's prompts at TRL's iteration k
        "disable_dropout": True,
        "log_completions": False,
    }
    if settings.algorithm == "rloo":
        return {**group, "normalize_advantages": False}
    from rlhf_gym.agents.grpo import GRPOConfig

    grpo = GRPOConfig()
    return {**group, "epsilon": grpo.clip_coef, "loss_type": "grpo", "scale_rewards": "group"}


def trl_effective(algorithm: str, args: Any) -> dict[str, Any]:
    """The compared quantities, read from TRL's config object ``args`` (or anything with its
    attributes, such as a namespace of `trl_arguments`), in `our_effective`'s keys."""
    precision = "bf16" if getattr(args, "bf16", False) else "fp16" if getattr(args, "fp16", False) else "fp32"
    common = {
        "temperature": args.temperature,
        "learning rate": args.learning_rate,
        "precision": precision,
        "gradient checkpointing": bool(args.gradient_checkpointing),
        "Adam epsilon": args.adam_epsilon,
    }
    accumulation = args.gradient_accumulation_steps
    if algorithm == "ppo":
        batch = args.per_device_train_batch_size * accumulation
        minibatch = batch // args.num_mini_batches
        micro_steps = math.ceil(minibatch / args.per_device_train_batch_size)
        return {
            "prompts per iteration": batch,
            "completions per prompt": 1,
            "episodes per iteration": batch,
            "epochs": args.num_ppo_epochs,
            "minibatches per epoch": args.num_mini_batches,
            "optimizer steps per iteration": args.num_ppo_epochs * args.num_mini_batches * micro_steps,
            "max new tokens": args.response_length,
            "stop token": "EOS" if args.stop_token == "eos" else repr(args.stop_token),
            "KL coefficient": args.kl_coef,
            "missing-EOS penalty": args.missing_eos_penalty or 0.0,
            "gradient-norm clip": "none",  # trl 1.12's PPO loop never clips gradients
            "critic": "preference model copy",  # the worker passes it as value_model
            "clip range": args.cliprange,
            "value clip range": args.cliprange_value,
            "value loss weight": args.vf_coef,
            "gamma": args.gamma,
            "GAE lambda": args.lam,
            **common,
        }
    generation_batch = getattr(args, "generation_batch_size", None) or (
        args.per_device_train_batch_size * accumulation * args.steps_per_generation)
    steps = args.steps_per_generation * args.num_iterations
    return {
        "prompts per iteration": generation_batch // args.num_generations,
        "completions per prompt": args.num_generations,
        "episodes per iteration": generation_batch,
        "epochs": args.num_iterations,
        "minibatches per epoch": args.steps_per_generation // accumulation,
        "optimizer steps per iteration": steps // accumulation,
        "max new tokens": args.max_completion_length,
        "stop token": "EOS",  # generate() stops at the tokenizer's EOS; TRL masks what follows
        "KL coefficient": args.beta,
        "missing-EOS penalty": 0.0,  # TRL's RLOO and GRPO have none
        "gradient-norm clip": args.max_grad_norm,
        **({"clip range": args.epsilon} if algorithm == "grpo" else {}),
        **common,
    }


def settings_table(ours: dict[str, Any], trl: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per compared quantity: ``{"setting", "ours", "trl", "equal"}`` (numbers equal to 1e-9).

    Example:
        >>> settings_table({"epochs": 4, "max new tokens": 64}, {"epochs": 4, "max new tokens": 53})
        [{'setting': 'epochs', 'ours': 4, 'trl': 4, 'equal': True}, {'setting': 'max new tokens', 'ours': 64, 'trl': 53, 'equal': False}]
    """
    rows = []
    for key in [*ours, *(k for k in trl if k not in ours)]:
        a, b = ours.get(key), trl.get(key)
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        equal = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) if numbers else a == b
        rows.append({"setting": key, "ours": a, "trl": b, "equal": bool(equal)})
    return rows


KNOWN_DIFFERENCES: dict[str, tuple[str, ...]] = {
    "all": (
        "context width: ours keeps the env's fixed (N, P + T) buffer and each forward of the update drops the columns that are "
        "padding in every row of its minibatch, left (prompt) and right (after every response's end); TRL's batches span the "
        "batch's longest prompt and its longest response.",
        "scoring: our env decodes each finished response and the preference model re-tokenises prompt + response text and "
        "appends EOS (its text interface, shared by every agent); TRL scores token ids (PPO) or decoded text without EOS "
        "(RLOO, GRPO). Our env also scores every episode with the task's gold judge for its logs; TRL has no gold judge.",
        "reward scale: matched. TRL's reward model (and PPO's value model) carry the preference model's normalised head, "
        "(w.h + b - mean) / std, so both sides train on the same normalised score.",
        "bookkeeping: ours writes TensorBoard scalars every iteration; TRL logs its metrics every step (report_to none) and, "
        "as shipped, runs gc.collect() and empties the device cache inside its loop. Both are timed as each side ships.",
    ),
    "ppo": (
        "critic step size: ours steps the critic at 3e-4 (value_learning_rate) beside the policy's 3e-5 in one Adam; trl 1.12 "
        "uses one AdamW at the policy's rate for both. No cost difference.",
        "gradient clipping: ours clips the global gradient norm at 1.0 each step; trl 1.12's PPO never clips.",
        "rollout log-probs: ours keeps each sampled token's log-prob from the rollout; TRL keeps generate()'s logits for every "
        "step (N, T, V) and takes the log-softmax afterwards.",
    ),
    "rloo": (
        "missing-EOS penalty: TRL's RLOO has none, so ours runs without it (ours defaults to 1.0).",
        "rollout log-probs: TRL runs an extra forward pass after generation for the rollout policy's log-probs "
        "(old_per_token_logps); ours keeps the log-probs sampled during the rollout.",
    ),
    "grpo": (
        "missing-EOS penalty: TRL's GRPO has none, so ours runs without it (ours defaults to 1.0).",
        "rollout log-probs: with a batch reused over epochs, TRL runs an extra forward pass after generation for the rollout "
        "policy's log-probs (old_per_token_logps); ours keeps the log-probs sampled during the rollout.",
        "minibatch order: ours reshuffles the batch every epoch; TRL shuffles it once and reuses the split. No cost difference.",
    ),
}
"""What differs between the sides and could not be matched (or is matched, and says how)."""


def known_differences(algorithm: str) -> list[str]:
    return [*KNOWN_DIFFERENCES["all"], *KNOWN_DIFFERENCES[algorithm]]


# Prompts ------------------------------------------------------------------------------
@dataclass(frozen=True)
class IterationPrompts:
    """The distinct prompts of one of our iterations, in batch order.

    Attributes:
        token_ids: each prompt's ids as the env holds them (left truncation applied, no padding).
        texts: each prompt's text.
    """

    token_ids: list[list[int]]
    texts: list[str]


def iteration_prompts(settings: TrainingSettings) -> list[IterationPrompts]:
    """The prompts our agent draws at iterations ``0 .. settings.iterations - 1``: its train
    env reset with `rlhf_gym.agents.common.rollout_seed`, one prompt per group."""
    from rlhf_gym.agents.common import make_env, rollout_seed

    env = make_env(settings.env, settings.episodes, "train", group_size=settings.group_size)
    width = env.max_prompt_tokens
    batches = []
    for iteration in range(settings.iterations):
        obs, _ = env.reset(seed=rollout_seed(settings.seed, iteration, settings.episodes))
        ids, mask = obs["input_ids"][:, :width].tolist(), obs["attention_mask"][:, :width].tolist()
        rows = range(0, settings.episodes, settings.group_size)  # a group's rows share its prompt
        batches.append(IterationPrompts(
            token_ids=[[t for t, m in zip(ids[r], mask[r]) if m] for r in rows],
            texts=[env.prompts[r].text for r in rows],
        ))
    env.close()
    return batches

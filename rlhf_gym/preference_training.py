"""Bradley–Terry training of a `PreferenceModel` on pairwise comparisons.

The reward-model stage of RLHF (Christiano et al. 2017, "Deep RL from Human
Preferences"; Stiennon et al. 2020, "Learning to Summarize from Human Feedback"): given
a prompt and two responses of which annotators preferred ``chosen``, the model's scalar
scores r are trained so that P(chosen ≻ rejected) = σ(r_chosen − r_rejected), i.e. with
the loss

    loss = −log σ(r(x, y_chosen) − r(x, y_rejected)),

averaged over the minibatch. Only score differences are learned; the offset is fixed
afterwards by ``PreferenceModel.fit_normalization`` (reference responses score mean 0).

Both responses of every pair are encoded with ``PreferenceModel.encode`` (the one
definition of the model's input format) and scored in one forward pass per minibatch
(chosen rows then rejected rows, concatenated): one pass instead of two, and both
responses of a pair are scored by exactly the same weights.
Optimisation: AdamW and the linear warm-up/decay schedule of `rlhf_gym.sft`,
gradient-norm clipping, minibatch order from a seeded ``torch.Generator``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rlhf_gym.preference_model import PreferenceModel
from rlhf_gym.sft import adamw, linear_warmup_decay


@dataclass
class PreferenceTrainingConfig:
    """Hyper-parameters of Bradley–Terry training; defaults suit the tiny GPT-2s."""

    epochs: int = 1  # passes over the comparisons (RLHF reward models usually get one)
    batch_size: int = 32  # comparisons per optimiser step (each forward scores 2x this)
    learning_rate: float = 5e-4  # peak AdamW step size
    warmup_fraction: float = 0.05  # share of the steps with linearly rising learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay (on weight matrices only)
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    seed: int = 0  # seeds the minibatch order
    log_every: int = 10  # steps between progress-bar updates; also the final-metric window

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"PreferenceTrainingConfig.{name} must be >= 1, got {getattr(self, name)}"
                )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(
                f"PreferenceTrainingConfig.learning_rate must be > 0, got {self.learning_rate}"
            )
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise ValueError(
                "PreferenceTrainingConfig.warmup_fraction must be in [0, 1], "
                f"got {self.warmup_fraction}"
            )
        for name in ("weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise ValueError(
                    f"PreferenceTrainingConfig.{name} must be >= 0, got {getattr(self, name)}"
                )


@dataclass
class PreferenceTrainingResult:
    """What a Bradley–Terry training run did."""

    losses: list[float]  # mean −log σ(r_chosen − r_rejected) of each optimiser step
    accuracies: list[float]  # share of each step's pairs with r_chosen > r_rejected, pre-update
    final_loss: float  # mean of the last `log_every` step losses
    final_accuracy: float  # mean of the last `log_every` step accuracies
    pairs_seen: int  # comparisons processed (epochs × pairs)
    wall_time: float  # seconds


def train_preference_model(
    preference_model: PreferenceModel,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    config: PreferenceTrainingConfig,
    *,
    progress: bool = True,
) -> PreferenceTrainingResult:
    """Train ``preference_model.model`` in place with the Bradley–Terry loss.

    Args:
        preference_model: the model to train, on its device; its model is left in eval
            mode afterwards (as `PreferenceModel` keeps it). Its normalisation is not
            changed: call ``fit_normalization`` after training.
        prompts: N prompt texts.
        chosen: N preferred responses.
        rejected: N dispreferred responses.
        config: hyper-parameters.
        progress: show a tqdm bar with loss and accuracy.

    Returns:
        Per-step losses and accuracies, their final values, pairs seen and wall time.

    Raises:
        ValueError: the three sequences differ in length or are empty.
    """
    _check_comparisons(prompts, chosen, rejected)
    started = time.perf_counter()
    model = preference_model.model
    n = len(prompts)
    total_steps = config.epochs * math.ceil(n / config.batch_size)

    # Set-up
    optimizer = adamw(model, config.learning_rate, config.weight_decay)
    scheduler = linear_warmup_decay(optimizer, total_steps, config.warmup_fraction)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()

    losses: list[float] = []
    accuracies: list[float] = []
    bar = tqdm(total=total_steps, desc="preference model", disable=not progress, dynamic_ncols=True)
    try:
        for _ in range(config.epochs):
            order = torch.randperm(n, generator=generator).tolist()
            for start in range(0, n, config.batch_size):
                index = order[start : start + config.batch_size]
                b = len(index)
                batch_prompts = [prompts[i] for i in index]
                # One forward over 2b rows: chosen first, then rejected (same prompts).
                encoded = preference_model.encode(
                    batch_prompts + batch_prompts,
                    [chosen[i] for i in index] + [rejected[i] for i in index],
                ).to(preference_model.device)
                scores = preference_model.forward_encoded(
                    encoded["input_ids"], encoded["attention_mask"]
                )  # (2b,)
                margin = scores[:b] - scores[b:]  # (b,) r_chosen − r_rejected

                # Bradley–Terry loss; logsigmoid is the numerically stable −softplus(−x).
                loss = -F.logsigmoid(margin).mean()

                # Update
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()

                # Logging
                losses.append(loss.item())
                accuracies.append((margin > 0).float().mean().item())
                bar.update(1)
                if len(losses) % config.log_every == 0:
                    bar.set_postfix(
                        loss=f"{_mean(losses[-config.log_every :]):.4f}",
                        acc=f"{_mean(accuracies[-config.log_every :]):.3f}",
                    )
    finally:
        bar.close()
        model.eval()

    return PreferenceTrainingResult(
        losses=losses,
        accuracies=accuracies,
        final_loss=_mean(losses[-config.log_every :]),
        final_accuracy=_mean(accuracies[-config.log_every :]),
        pairs_seen=config.epochs * n,
        wall_time=time.perf_counter() - started,
    )


@torch.no_grad()
def preference_accuracy(
    preference_model: PreferenceModel,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
) -> float:
    """Share of comparisons in which the model scores ``chosen`` strictly above ``rejected``.

    Ties count as errors. Raw scores are compared (normalisation is monotone, so it does
    not matter); scoring is batched by ``preference_model.batch_size``.

    Raises:
        ValueError: the three sequences differ in length or are empty.
    """
    _check_comparisons(prompts, chosen, rejected)
    was_training = preference_model.model.training
    preference_model.model.eval()
    try:
        r_chosen = preference_model.raw_scores(prompts, chosen)  # (N,)
        r_rejected = preference_model.raw_scores(prompts, rejected)  # (N,)
    finally:
        preference_model.model.train(was_training)
    return (r_chosen > r_rejected).float().mean().item()


def _check_comparisons(
    prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str]
) -> None:
    if not len(prompts) == len(chosen) == len(rejected):
        raise ValueError(
            f"got {len(prompts)} prompts, {len(chosen)} chosen and {len(rejected)} rejected "
            "responses; they must have the same length"
        )
    if len(prompts) == 0:
        raise ValueError("got no comparisons; need at least one (prompt, chosen, rejected)")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


__all__ = [
    "PreferenceTrainingConfig",
    "PreferenceTrainingResult",
    "preference_accuracy",
    "train_preference_model",
]

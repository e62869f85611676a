"""Bradley–Terry training of a `PreferenceModel` on pairwise comparisons.

The reward-model stage of RLHF (Christiano et al. 2017, "Deep RL from Human
Preferences"; Stiennon et al. 2020, "Learning to Summarize from Human Feedback"): given
a prompt and two responses of which annotators preferred ``chosen``, the model's scalar
scores r are trained so that P(chosen ≻ rejected) = σ(r_chosen − r_rejected), i.e. with
the loss

    loss = −log σ(r(x, y_chosen) − r(x, y_rejected)),

averaged over the minibatch. Only score differences are learned; the offset is fixed
afterwards by ``PreferenceModel.fit_normalization`` (reference responses score mean 0).

A minibatch is a set of prompts, each with its candidate responses and labelled pairs
among them: every candidate is scored once (InstructGPT), by exactly the same weights,
and each prompt is forwarded once, its candidates reading its cached keys and values
(``PreferenceModel.forward_groups``; ``share_prompts=False`` encodes every row in full).
Optimisation: AdamW and the linear warm-up/decay schedule of `rlhf_gym.pipeline.sft`,
gradient-norm clipping, minibatch order from a seeded ``torch.Generator``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rlhf_gym.pipeline.sft import adamw, linear_warmup_decay
from rlhf_gym.rewards.preference_model import PreferenceModel


@dataclass
class PreferenceTrainingConfig:
    """Hyper-parameters of Bradley–Terry training; defaults suit the tiny GPT-2s."""

    epochs: int = 1  # passes over the comparisons (RLHF reward models usually get one)
    batch_size: int = 32  # pairs (or prompt groups) per optimiser step
    learning_rate: float = 5e-4  # peak AdamW step size
    warmup_fraction: float = 0.05  # share of the steps with linearly rising learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay (on weight matrices only)
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    seed: int = 0  # seeds the minibatch order
    log_every: int = 10  # steps between progress-bar updates; also the final-metric window
    # Forward each prompt once and its candidates on its cached keys/values (exact, to float
    # precision; ~3x fewer tokens on TL;DR). False: every (prompt, candidate) row in full.
    share_prompts: bool = True

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
    epoch_metrics: list[dict[str, float]] = field(default_factory=list)  # `on_epoch_end`'s, per epoch


@dataclass(frozen=True)
class ComparisonGroup:
    """All labelled comparisons of one prompt: its candidate responses and the pairs.

    Training on a prompt's comparisons together scores each candidate once, however many
    pairs it appears in (Ouyang et al. 2022, InstructGPT §3.5: "we train on all K-choose-2
    comparisons from each prompt as a single batch element ... it only requires a single
    forward pass of the RM for each completion").

    Attributes:
        prompt: the prompt text.
        responses: the distinct candidate responses.
        pairs: ``(chosen_index, rejected_index)`` into ``responses``, one per label.
    """

    prompt: str
    responses: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError(f"a comparison group needs at least one pair (prompt {self.prompt[:40]!r}...)")
        for chosen, rejected in self.pairs:
            if not (0 <= chosen < len(self.responses) and 0 <= rejected < len(self.responses)):
                raise ValueError(f"pair {(chosen, rejected)} indexes outside {len(self.responses)} responses")


def train_preference_model(
    preference_model: PreferenceModel,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    config: PreferenceTrainingConfig,
    *,
    progress: bool = True,
    on_epoch_end: Callable[[PreferenceModel], dict[str, float]] | None = None,
) -> PreferenceTrainingResult:
    """Train ``preference_model.model`` in place with the Bradley–Terry loss on pairs.

    Each pair is its own `ComparisonGroup` (one step scores ``2 * batch_size`` rows); see
    `train_preference_model_on_groups` (and its ``on_epoch_end``).

    Args:
        preference_model: the model to train, on its device; its model is left in eval
            mode afterwards (as `PreferenceModel` keeps it). Its normalisation is not
            changed: call ``fit_normalization`` after training.
        prompts: N prompt texts.
        chosen: N preferred responses.
        rejected: N dispreferred responses.
        config: hyper-parameters (``batch_size`` counts pairs).
        progress: show a tqdm bar with loss and accuracy.

    Raises:
        ValueError: the three sequences differ in length or are empty.
    """
    _check_comparisons(prompts, chosen, rejected)
    groups = [
        ComparisonGroup(p, (c, r), ((0, 1),)) for p, c, r in zip(prompts, chosen, rejected, strict=True)
    ]
    return train_preference_model_on_groups(
        preference_model, groups, config, progress=progress, on_epoch_end=on_epoch_end
    )


def train_preference_model_on_groups(
    preference_model: PreferenceModel,
    groups: Sequence[ComparisonGroup],
    config: PreferenceTrainingConfig,
    *,
    progress: bool = True,
    on_epoch_end: Callable[[PreferenceModel], dict[str, float]] | None = None,
) -> PreferenceTrainingResult:
    """Train with the Bradley–Terry loss, a minibatch being ``batch_size`` prompt groups.

    Every candidate of the minibatch's groups is scored once, its prompt encoded once per
    group (``config.share_prompts``); the loss is the mean of −log σ(r_chosen − r_rejected)
    over all the minibatch's pairs.

    ``on_epoch_end``, if given, is called with the model (in eval mode) after every epoch;
    the metrics it returns (say, validation accuracy) are printed and kept in
    ``epoch_metrics``: a learning curve.

    Returns:
        Per-step losses and accuracies (over pairs), final values, pairs seen, wall time.
    """
    if not groups:
        raise ValueError("got no comparison groups; need at least one")
    started = time.perf_counter()
    model = preference_model.model
    n = len(groups)
    total_steps = config.epochs * math.ceil(n / config.batch_size)

    # Set-up
    optimizer = adamw(model, config.learning_rate, config.weight_decay)
    scheduler = linear_warmup_decay(optimizer, total_steps, config.warmup_fraction)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()

    losses: list[float] = []
    accuracies: list[float] = []
    pairs_seen = 0
    epoch_metrics: list[dict[str, float]] = []
    bar = tqdm(total=total_steps, desc="preference model", disable=not progress, dynamic_ncols=True)
    try:
        for _ in range(config.epochs):
            order = torch.randperm(n, generator=generator).tolist()
            for start in range(0, n, config.batch_size):
                batch = [groups[i] for i in order[start : start + config.batch_size]]
                chosen_rows, rejected_rows, offset = [], [], 0
                for group in batch:
                    chosen_rows += [offset + c for c, _ in group.pairs]
                    rejected_rows += [offset + r for _, r in group.pairs]
                    offset += len(group.responses)
                scores = _score_candidates(preference_model, batch, config.share_prompts)  # (rows,)
                margin = scores[chosen_rows] - scores[rejected_rows]  # (pairs,) r_chosen − r_rejected

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
                pairs_seen += len(chosen_rows)
                bar.update(1)
                if len(losses) % config.log_every == 0:
                    bar.set_postfix(
                        loss=f"{_mean(losses[-config.log_every :]):.4f}",
                        acc=f"{_mean(accuracies[-config.log_every :]):.3f}",
                    )
            if on_epoch_end is not None:
                model.eval()
                metrics = on_epoch_end(preference_model)
                model.train()
                epoch_metrics.append(metrics)
                bar.write(f"epoch {len(epoch_metrics)}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    finally:
        bar.close()
        model.eval()

    return PreferenceTrainingResult(
        losses=losses,
        accuracies=accuracies,
        final_loss=_mean(losses[-config.log_every :]),
        final_accuracy=_mean(accuracies[-config.log_every :]),
        pairs_seen=pairs_seen,
        wall_time=time.perf_counter() - started,
        epoch_metrics=epoch_metrics,
    )


def _score_candidates(
    preference_model: PreferenceModel, groups: Sequence[ComparisonGroup], share_prompts: bool
) -> torch.Tensor:
    """Raw scores (gradients kept) of every group's responses, groups in order."""
    if share_prompts:
        return preference_model.forward_groups([g.prompt for g in groups], [g.responses for g in groups])
    prompts = [g.prompt for g in groups for _ in g.responses]
    encoded = preference_model.encode(prompts, [r for g in groups for r in g.responses])
    encoded = encoded.to(preference_model.device)
    return preference_model.forward_encoded(encoded["input_ids"], encoded["attention_mask"])


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
    "ComparisonGroup",
    "train_preference_model_on_groups",
    "PreferenceTrainingConfig",
    "PreferenceTrainingResult",
    "preference_accuracy",
    "train_preference_model",
]

"""The reward seam: what the env asks of a learned reward, and the registry of named rewards.

A `RewardModel` is anything with ``score(prompts, responses) -> (n,) tensor``: the shipped
`rlhf_gym.rewards.preference_model.PreferenceModel` (and its ensemble), a discriminator, a
hand-written scorer. The env (`rlhf_gym.env.vector_env.TokenVectorEnv`) reports its score as
the ``proxy`` of the gold judge, and by default rewards with it. A model may also read the
env's token ids directly (`TokenRewardModel.score_ids`), skipping the decode and the
re-tokenisation, when it declares that it reads ids of the env's tokenizer
(`TokenRewardModel.reads_token_ids`); the shipped `PreferenceModel` has its own tokenizer
and input format, so it always scores text.

What the final step rewards is a *reward scorer*: a function of the episodes that finish in
a step (`FinishedEpisodes`: their texts, token ids, proxy and gold scores). The env's
``reward=`` argument names a registered scorer or passes a `RewardModel` object. The
registry is open (`register_reward_scorer`); it starts with:

- ``"preference"``: the env's learned reward, its ``proxy`` score (the default);
- ``"gold"``: the gold judge's score, an oracle run (Gao et al. 2023, "Scaling Laws for
  Reward Model Overoptimization", compare proxy-trained policies against such runs); it
  needs an env with a gold judge.

Example:
    >>> import torch
    >>> class Length:  # a RewardModel: longer responses score higher
    ...     def score(self, prompts, responses):
    ...         return torch.tensor([float(len(r)) for r in responses])
    >>> isinstance(Length(), RewardModel), isinstance("preference", RewardModel)
    (True, False)
    >>> sorted(reward_scorer_names())[:2]
    ['gold', 'preference']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


@runtime_checkable
class RewardModel(Protocol):
    """Scores (prompt text, response text) pairs; higher is better."""

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """(n,) float scores of n pairs, on any device (the env moves them to its own)."""
        ...


@runtime_checkable
class TokenRewardModel(RewardModel, Protocol):
    """A `RewardModel` that can also score the env's token ids, with no decode or re-tokenisation."""

    def score_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(R,) scores of R finished episodes given as the env lays them out.

        Args:
            input_ids: (R, L) int64: the prompt left-padded in columns ``[0, P)``, the
                response from column ``P`` (EOS included when the episode terminated),
                then padding (see `TokenVectorEnv`, "Observation Space").
            attention_mask: (R, L) int64, 1 on real tokens.
        """
        ...

    def reads_token_ids(self, tokenizer: PreTrainedTokenizerBase) -> bool:
        """Whether `score_ids` reads ids made by ``tokenizer`` (the env asks once, with its own)."""
        ...


def takes_token_ids(model: RewardModel, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the env may hand ``model`` its token ids instead of texts.

    Only a model with ``score_ids`` that declares it reads ``tokenizer``'s ids qualifies; any
    other model scores the decoded texts.
    """
    return isinstance(model, TokenRewardModel) and bool(model.reads_token_ids(tokenizer))


def score_episodes(
    model: RewardModel,
    prompts: Sequence[str],
    responses: Sequence[str],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    use_ids: bool,
) -> torch.Tensor:
    """``model``'s (R,) scores of R finished episodes: from their ids if ``use_ids``, else their texts.

    ``use_ids`` comes from `takes_token_ids`, decided once when the env is built.
    """
    if use_ids:
        return model.score_ids(input_ids, attention_mask)  # type: ignore[attr-defined]
    return model.score(prompts, responses)


@dataclass(frozen=True)
class FinishedEpisodes:
    """The R episodes that end in one env step, as a reward scorer sees them.

    Attributes:
        prompts: R prompt texts.
        responses: R response texts (EOS excluded).
        input_ids: (R, L) int64 final contexts in the env's layout (see `TokenRewardModel.score_ids`).
        attention_mask: (R, L) int64.
        proxy: (R,) the env's learned reward's scores, on the env's device.
        gold: (R,) float64 gold-judge scores, or None when the env has no gold judge.
    """

    prompts: Sequence[str]
    responses: Sequence[str]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    proxy: torch.Tensor
    gold: np.ndarray | None


class RewardContext(Protocol):
    """What a scorer factory may read of the env it builds a scorer for (a `TokenVectorEnv` is one)."""

    reward_model: RewardModel
    has_gold_judge: bool
    tokenizer: PreTrainedTokenizerBase
    device: torch.device


RewardScorer = Callable[[FinishedEpisodes], torch.Tensor]
"""``(episodes) -> (R,)`` scores on the env's device; the env adds the missing-EOS penalty."""

RewardScorerFactory = Callable[[RewardContext], RewardScorer]
"""Builds a scorer for one env; raises ``ValueError`` if that env cannot support it."""


def _learned_reward(context: RewardContext) -> RewardScorer:
    """``"preference"``: the env's learned reward, the score it already reports as ``proxy``."""
    return lambda episodes: episodes.proxy


def _gold_reward(context: RewardContext) -> RewardScorer:
    """``"gold"``: the gold judge's score, in the proxy's dtype (an oracle run)."""
    if not context.has_gold_judge:
        raise ValueError(
            "reward='gold' needs a gold judge, and this env has none (prompts from an "
            "external dataset have no latent record to judge); use reward='preference'"
        )
    return lambda episodes: torch.as_tensor(episodes.gold, dtype=episodes.proxy.dtype, device=episodes.proxy.device)


_REWARD_SCORERS: dict[str, RewardScorerFactory] = {"preference": _learned_reward, "gold": _gold_reward}


def register_reward_scorer(name: str, factory: RewardScorerFactory, *, replace: bool = False) -> None:
    """Make ``reward=name`` available to every env built from now on.

    Args:
        name: the name envs are given (``reward="name"``).
        factory: ``(env) -> scorer``, called once per env at construction (`RewardContext`
            lists what it may read); it raises ``ValueError`` for an env it cannot serve.
        replace: allow replacing a scorer already registered under ``name``.

    Raises:
        ValueError: ``name`` is empty or taken (and ``replace`` is off).
        TypeError: ``factory`` is not callable.

    Example:
        >>> register_reward_scorer("preference", _learned_reward)
        Traceback (most recent call last):
        ...
        ValueError: a reward scorer named 'preference' is already registered; pass replace=True to replace it
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a reward scorer's name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"a reward scorer's factory must be callable (env -> scorer), got {type(factory).__name__}")
    if name in _REWARD_SCORERS and not replace:
        raise ValueError(f"a reward scorer named {name!r} is already registered; pass replace=True to replace it")
    _REWARD_SCORERS[name] = factory


def reward_scorer_names() -> tuple[str, ...]:
    """The registered names, in registration order (``"preference"``, ``"gold"``, then others)."""
    return tuple(_REWARD_SCORERS)


def make_reward_scorer(reward: str | RewardModel, context: RewardContext) -> RewardScorer:
    """The scorer for ``reward``: a registered name, or a `RewardModel` whose score is the reward.

    Raises:
        ValueError: an unregistered name, or a scorer the env cannot support (``"gold"``
            without a gold judge).
        TypeError: neither a string nor an object with ``score``.
    """
    if isinstance(reward, str):
        factory = _REWARD_SCORERS.get(reward)
        if factory is None:
            raise ValueError(f"reward must be one of the registered scorers {reward_scorer_names()} or a RewardModel, got {reward!r}")
        return factory(context)
    if not isinstance(reward, RewardModel):
        raise TypeError(
            f"reward must be a registered scorer name {reward_scorer_names()} or a RewardModel "
            f"(an object with score(prompts, responses)), got {type(reward).__name__}"
        )
    use_ids = takes_token_ids(reward, context.tokenizer)

    def score(episodes: FinishedEpisodes) -> torch.Tensor:
        scores = score_episodes(
            reward, episodes.prompts, episodes.responses, episodes.input_ids, episodes.attention_mask, use_ids=use_ids
        )
        return scores.to(episodes.proxy.device)

    return score


__all__ = [
    "FinishedEpisodes",
    "RewardContext",
    "RewardModel",
    "RewardScorer",
    "RewardScorerFactory",
    "TokenRewardModel",
    "make_reward_scorer",
    "register_reward_scorer",
    "reward_scorer_names",
    "score_episodes",
    "takes_token_ids",
]

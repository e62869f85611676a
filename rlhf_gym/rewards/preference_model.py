"""The learned reward: a Hugging Face sequence classifier scoring (prompt, response) text.

A `PreferenceModel` wraps any ``AutoModelForSequenceClassification`` with one label
(trained with the Bradley–Terry loss, Christiano et al. 2017; Stiennon et al. 2020) and
its tokenizer. It scores a batch of finished episodes in one forward pass and normalises
the raw scores so that the task's reference responses score mean 0 and standard
deviation 1, as in the TL;DR RLHF work (Stiennon et al. 2020; Huang et al. 2024, "The N+
Implementation Details of RLHF with PPO").

`encode` is the single definition of the model's input format (prompt text, response
text, then EOS), shared by scoring and by preference-model training.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import BatchEncoding, DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from rlhf_gym.lm.layout import (
    left_pad,
    position_ids_from_attention_mask,
    tokenize_left_truncated,
)
from rlhf_gym.lm.loading import (
    MissingArtifactError,
    check_tokenizer,
    find_file,
    load_sequence_classifier,
    load_tokenizer,
)

NORMALIZATION_FILE = "reward_normalization.json"
SCORING_FILE = "scoring.json"  # the input length the model was trained with (absent: 512)


@dataclass(frozen=True)
class RewardNormalization:
    """Affine map from raw preference-model scores to normalised rewards: (raw - mean) / std."""

    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise ValueError(
                f"reward normalisation needs a finite mean and a finite std > 0, "
                f"got mean={self.mean}, std={self.std}"
            )


class PreferenceModel:
    """Batched, normalised scoring of (prompt, response) pairs by a sequence classifier.

    Args:
        model: a sequence classifier with ``num_labels == 1``.
        tokenizer: its tokenizer (needs EOS and a distinct pad token).
        normalization: maps raw scores to rewards; identity by default.
        max_length: longest input in tokens; longer inputs lose the start of the prompt.
            Capped at the model's position table (``n_positions``), which it cannot read past.
        batch_size: rows per forward pass when scoring many episodes.
        device: where the model runs.

    Example:
        >>> from rlhf_gym.rewards.preference_model import RewardNormalization
        >>> RewardNormalization(mean=0.5, std=2.0)
        RewardNormalization(mean=0.5, std=2.0)
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        normalization: RewardNormalization | None = None,
        max_length: int = 512,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
    ) -> None:
        num_labels = getattr(model.config, "num_labels", None)
        if num_labels != 1:
            raise ValueError(
                f"a preference model must have exactly one output label (a scalar score), "
                f"got num_labels={num_labels}"
            )
        check_tokenizer(tokenizer, "preference model tokenizer")
        if model.config.pad_token_id is None:
            # Sequence classifiers pick the last non-pad token; without a pad id they fail.
            model.config.pad_token_id = tokenizer.pad_token_id
        if max_length < 2 or batch_size < 1:
            raise ValueError(f"need max_length >= 2 and batch_size >= 1, got {max_length}, {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.normalization = normalization or RewardNormalization()
        positions = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
        self.max_length = min(max_length, positions) if positions else max_length
        self.batch_size = batch_size

    # Loading and saving -------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        max_length: int | None = None,
        batch_size: int = 64,
    ) -> PreferenceModel:
        """Load a preference model (and its normalisation, if saved beside it).

        Model and tokenizer load through `rlhf_gym.lm.loading` (safetensors only, float32,
        remote code refused unless ``trust_remote_code``). A saved
        `rlhf_gym.rewards.preference_ensemble.PreferenceEnsemble` folder loads with
        `rlhf_gym.rewards.loading.load_reward_model`, which takes either kind.

        Args:
            name_or_path: hub id or local folder.
            device: where the model runs.
            revision: the hub branch, tag or commit (ignored for a local folder).
            trust_remote_code: allow classes shipped as Python with the checkpoint.
            local_files_only: never reach the hub.
            cache_dir: the Hugging Face cache to use instead of the default one.
            max_length: see the class; None: the length saved with the model (``scoring.json``,
                which `save_pretrained` writes), else 512.
            batch_size: see the class.

        Raises:
            MissingArtifactError: the model or its tokenizer cannot be found.
            UnsafeCheckpointError: pickled weights only, or remote code not allowed.
        """
        name = str(name_or_path)
        sources = {"revision": revision, "trust_remote_code": trust_remote_code, "local_files_only": local_files_only,
                   "cache_dir": cache_dir}
        model = load_sequence_classifier(name, **sources)
        tokenizer = load_tokenizer(name, **sources)
        normalization = None
        stats_file = find_file(name, NORMALIZATION_FILE, revision=revision, local_files_only=local_files_only, cache_dir=cache_dir)
        if stats_file is not None:
            normalization = RewardNormalization(**json.loads(stats_file.read_text()))
        if max_length is None:
            scoring_file = find_file(name, SCORING_FILE, revision=revision, local_files_only=local_files_only, cache_dir=cache_dir)
            max_length = int(json.loads(scoring_file.read_text())["max_length"]) if scoring_file is not None else 512
        return cls(
            model,
            tokenizer,
            normalization=normalization,
            max_length=max_length,
            batch_size=batch_size,
            device=device,
        )

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write model (safetensors), tokenizer and normalisation to ``directory``."""
        directory = Path(directory)
        self.model.save_pretrained(directory)
        # Saved to pad on the right, as reward models conventionally are (TRL pads reward
        # inputs on the right): GPT-2 has absolute positions, and plain transformers
        # (`model(**tokenizer(texts, padding=True))`, no position ids) would score a
        # left-padded row at shifted positions, unlike the same row alone. Our own encoding
        # pads explicitly and passes position ids, so it does not depend on this setting.
        padding_side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "right"
        try:
            self.tokenizer.save_pretrained(directory)
        finally:
            self.tokenizer.padding_side = padding_side
        (directory / NORMALIZATION_FILE).write_text(json.dumps(asdict(self.normalization)))
        # Scored as trained: a loaded copy truncates inputs where this one does.
        (directory / SCORING_FILE).write_text(json.dumps({"max_length": self.max_length}))

    # Scoring ------------------------------------------------------------------------
    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> BatchEncoding:
        """Tokenise (prompt, response) pairs as ``prompt + response + EOS``, left-padded.

        The EOS token marks where the response ends, so the classifier reads its score
        from the same position whether or not the policy emitted EOS itself. Inputs longer
        than ``max_length`` lose the beginning of the prompt, never the response.
        """
        if len(prompts) != len(responses):
            raise ValueError(
                f"got {len(prompts)} prompts but {len(responses)} responses; they must pair up"
            )
        input_ids, attention_mask = left_pad(self._token_rows(prompts, responses), self.tokenizer.pad_token_id)
        return BatchEncoding({"input_ids": input_ids, "attention_mask": attention_mask})

    def _token_rows(self, prompts: Sequence[str], responses: Sequence[str]) -> list[list[int]]:
        texts = [p + r for p, r in zip(prompts, responses, strict=True)]
        rows = tokenize_left_truncated(self.tokenizer, texts, self.max_length - 1)
        return [row + [self.tokenizer.eos_token_id] for row in rows]

    def forward_encoded(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw scalar scores, shape (B,), for already encoded inputs (gradients kept)."""
        position_ids = position_ids_from_attention_mask(attention_mask)
        logits = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
        ).logits
        return logits[:, 0].float()

    def forward_groups(
        self,
        prompts: Sequence[str],
        responses: Sequence[Sequence[str]],
        rows_per_chunk: int = 16,
    ) -> torch.Tensor:
        """Raw scores (gradients kept) of several responses per prompt, each prompt encoded once.

        The tokens every response of a prompt starts with (the prompt, at least) are
        forwarded once; each response then attends to that prefix's cached keys and values.
        The scores equal `forward_encoded` on `encode` of the flattened pairs, to float
        precision, at a fraction of the cost when responses are short next to the prompt
        (TL;DR: ~9 candidates of ~40 tokens after a ~150-token post, ~3x fewer tokens).

        Args:
            prompts: G prompt texts.
            responses: G sequences of responses, one sequence per prompt.
            rows_per_chunk: responses per forward pass, shortest first (16 was the fastest
                of 16-1000 for the shipped model's training steps on 2 CPU cores).

        Returns:
            (R,) scores, R = total responses, in order (prompt 0's responses first).
        """
        if len(prompts) != len(responses):
            raise ValueError(
                f"got {len(prompts)} prompts but {len(responses)} response groups; they must pair up"
            )
        if rows_per_chunk < 1:
            raise ValueError(f"rows_per_chunk must be >= 1, got {rows_per_chunk}")
        groups = [self._token_rows([p] * len(rs), rs) for p, rs in zip(prompts, responses, strict=True)]
        pad = self.tokenizer.pad_token_id
        shared = [_shared_prefix_length(rows) for rows in groups]
        if not all(shared):  # some prompt's responses share no token (left truncation): no cache
            encoded = left_pad([row for rows in groups for row in rows], pad)
            return self.forward_encoded(*(t.to(self.device) for t in encoded))
        prefix_ids, prefix_mask = left_pad([rows[0][:k] for rows, k in zip(groups, shared)], pad)
        prefix_ids, prefix_mask = prefix_ids.to(self.device), prefix_mask.to(self.device)
        prefix_cache = list(self.model(  # per layer: (keys, values, sliding window or None)
            input_ids=prefix_ids, attention_mask=prefix_mask,
            position_ids=position_ids_from_attention_mask(prefix_mask), use_cache=True,
        ).cache)
        prefix_length = prefix_mask.sum(-1)

        # Responses go through in chunks of similar length, each chunk padded only to its own
        # longest: TL;DR candidates run from a few tokens to a few hundred, and one block
        # padded to the longest holds ~4x the real tokens.
        suffixes = [row[k:] for rows, k in zip(groups, shared) for row in rows]
        row_group = [g for g, rows in enumerate(groups) for _ in rows]
        order = sorted(range(len(suffixes)), key=lambda i: len(suffixes[i]))
        scores = []
        for start in range(0, len(order), rows_per_chunk):
            rows = order[start : start + rows_per_chunk]
            owner = torch.tensor([row_group[i] for i in rows], device=self.device)
            suffix_ids, suffix_mask = left_pad([suffixes[i] for i in rows], pad)
            suffix_ids, suffix_mask = suffix_ids.to(self.device), suffix_mask.to(self.device)
            # One copy of its prompt's keys and values per response; the model appends to it.
            cache = DynamicCache([(keys[owner], values[owner], window) for keys, values, window in prefix_cache])
            # A response's positions continue its prefix's; the left padding of the chunk
            # sits between prefix and response, masked out like any padding.
            logits = self.model(
                input_ids=suffix_ids,
                attention_mask=torch.cat([prefix_mask[owner], suffix_mask], dim=1),
                position_ids=prefix_length[owner, None] + position_ids_from_attention_mask(suffix_mask),
                cache=cache,
            ).logits  # the classifier reads the last non-pad token: the final column
            scores.append(logits[:, 0].float())
        return torch.cat(scores)[torch.argsort(torch.tensor(order, device=self.device))]

    @torch.no_grad()
    def raw_scores(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """Unnormalised scores, shape (B,) float32 on ``self.device``."""
        scores = []
        for start in range(0, len(prompts), self.batch_size):
            batch = self.encode(
                prompts[start : start + self.batch_size], responses[start : start + self.batch_size]
            ).to(self.device)
            scores.append(self.forward_encoded(batch["input_ids"], batch["attention_mask"]))
        if not scores:
            return torch.zeros(0, device=self.device)
        return torch.cat(scores)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """Normalised rewards, shape (B,) float32: ``(raw - mean) / std``."""
        raw = self.raw_scores(prompts, responses)
        return (raw - self.normalization.mean) / self.normalization.std

    def fit_normalization(
        self, prompts: Sequence[str], references: Sequence[str]
    ) -> RewardNormalization:
        """Set the normalisation so that the reference responses score mean 0, std 1."""
        if len(prompts) < 2:
            raise ValueError(f"need at least 2 reference pairs to fit a std, got {len(prompts)}")
        raw = self.raw_scores(prompts, references).double()
        self.normalization = RewardNormalization(
            mean=raw.mean().item(), std=max(raw.std().item(), 1e-6)
        )
        return self.normalization


def _shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens all rows start with, leaving every row at least one token of its own."""
    length = min(len(row) for row in rows) - 1
    for position in range(length):
        if any(row[position] != rows[0][position] for row in rows[1:]):
            return position
    return max(length, 0)


__all__ = ["MissingArtifactError", "PreferenceModel", "RewardNormalization", "NORMALIZATION_FILE"]

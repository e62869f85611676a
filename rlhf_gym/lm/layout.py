"""Conventions for left-padded token batches shared by the env, training and agents.

The env left-pads prompts, so a row's first real token can sit at any column. Models must
see positions that count real tokens only, exactly as in training; this module is the one
definition of that rule.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


def position_ids_from_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of each token among the real (mask == 1) tokens of its row.

    Padding positions get 0 (they are masked out anyway).

    Example:
        >>> import torch
        >>> position_ids_from_attention_mask(torch.tensor([[0, 0, 1, 1, 1]])).tolist()
        [[0, 0, 0, 1, 2]]
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def trim_shared_left_padding(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Drop the prompt-block columns that are padding in every row: ``(input_ids,
    attention_mask, prompt_width)`` of the narrower buffer.

    The env's prompt block fits its longest prompt, so a batch of shorter ones carries
    columns that no row attends to. With positions counted over real tokens
    (`position_ids_from_attention_mask`), a causal model computes the same outputs without
    them, in less time. Response columns are never dropped. Costs one host sync per call
    (not per token).

    Example:
        >>> ids, mask, width = trim_shared_left_padding(
        ...     torch.tensor([[0, 0, 5, 6, 9], [0, 7, 8, 6, 9]]), torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1]]), 4)
        >>> ids.tolist(), width
        ([[0, 5, 6, 9], [7, 8, 6, 9]], 3)
    """
    used = attention_mask[:, :prompt_width].any(dim=0)
    start = int(used.long().argmax()) if bool(used.any()) else prompt_width
    if start == 0:
        return input_ids, attention_mask, prompt_width
    return input_ids[:, start:], attention_mask[:, start:], prompt_width - start


def trim_shared_right_padding(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Drop the response columns that are padding in every row: ``(input_ids, attention_mask,
    dropped)``, ``dropped`` the number of columns cut from the right.

    The buffer has room for ``max_new_tokens`` response tokens; a batch whose longest
    response is shorter carries columns after every row's end. A causal model's outputs at
    the kept columns do not depend on later ones, so per-token results are those of the
    full buffer; pad them back with ``dropped`` columns where a caller needs the full width
    (`pad_response_columns`). Costs one host sync per call (not per token).

    Example:
        >>> ids, mask, dropped = trim_shared_right_padding(
        ...     torch.tensor([[5, 6, 9, 0, 0], [7, 8, 9, 9, 0]]), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]), 2)
        >>> ids.tolist(), dropped
        ([[5, 6, 9, 0], [7, 8, 9, 9]], 1)
    """
    horizon = input_ids.shape[1] - prompt_width
    longest = int(attention_mask[:, prompt_width:].any(dim=0).sum())  # responses are prefixes of the block
    if longest == horizon:
        return input_ids, attention_mask, 0
    end = prompt_width + longest
    return input_ids[:, :end], attention_mask[:, :end], horizon - longest


def pad_response_columns(values: torch.Tensor, dropped: int) -> torch.Tensor:
    """``values`` (N, T', ...) padded with zeros to (N, T' + dropped, ...) along dim 1: the
    per-token results of a right-trimmed buffer (`trim_shared_right_padding`) at full width.

    Example:
        >>> pad_response_columns(torch.tensor([[1.0, 2.0]]), 2).tolist()
        [[1.0, 2.0, 0.0, 0.0]]
    """
    if dropped == 0:
        return values
    shape = (values.shape[0], dropped, *values.shape[2:])
    return torch.cat([values, values.new_zeros(shape)], dim=1)


def tokenize_left_truncated(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[list[int]]:
    """Token ids of each text without special tokens, keeping at most the last ``max_length``.

    Truncating on the left keeps a prompt's task suffix (e.g. ``"TL;DR:"``) and a
    response's end, which is what both the policy and the preference model must see.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    rows = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return [row[-max_length:] for row in rows]


def left_pad(
    rows: Sequence[Sequence[int]], pad_token_id: int, width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token rows into ``(input_ids, attention_mask)``, both (B, width) int64.

    Rows may be lists or numpy arrays; the batch is built in numpy and handed to torch once.

    Example:
        >>> ids, mask = left_pad([[5, 6], [7]], pad_token_id=0)
        >>> ids.tolist(), mask.tolist()
        ([[5, 6], [0, 7]], [[1, 1], [0, 1]])
    """
    lengths = [len(row) for row in rows]
    longest = max(lengths, default=0)
    width = longest if width is None else width
    if longest > width:
        raise ValueError(f"a row of {longest} tokens does not fit in width {width}")
    input_ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, (row, length) in enumerate(zip(rows, lengths, strict=True)):  # over rows being (re)filled only
        if length:
            input_ids[i, width - length :] = row
            attention_mask[i, width - length :] = 1
    return torch.from_numpy(input_ids), torch.from_numpy(attention_mask)


def decode_exact(tokenizer: PreTrainedTokenizerBase, rows: Sequence[Sequence[int]]) -> list[str]:
    """Each row's text, special tokens kept and no clean-up of spaces: exactly
    ``tokenizer.batch_decode(rows, skip_special_tokens=False, clean_up_tokenization_spaces=False)``.

    For a fast tokenizer whose decoding is transformers' own, the rows go straight to the
    Rust backend's ``decode_batch``, which is what ``batch_decode`` ends in: this skips
    transformers' per-token type conversion, about 40% of decoding 48-token responses.
    Any other tokenizer (slow, or a subclass with its own ``_decode``) goes through
    ``batch_decode``.
    """
    if _plain_fast_decode(type(tokenizer)) and getattr(tokenizer, "is_fast", False):
        return tokenizer.backend_tokenizer.decode_batch(
            [row if isinstance(row, list) else list(row) for row in rows], skip_special_tokens=False
        )
    return tokenizer.batch_decode(list(rows), skip_special_tokens=False, clean_up_tokenization_spaces=False)


@functools.cache
def _plain_fast_decode(tokenizer_class: type) -> bool:
    """Whether ``tokenizer_class`` decodes with transformers' fast-tokenizer ``_decode``, unchanged by a
    subclass (once per class: `decode_exact` is on the env's step path)."""
    for cls in tokenizer_class.__mro__:
        if "_decode" in vars(cls):
            return cls.__module__ == "transformers.tokenization_utils_tokenizers" or cls.__module__ == (
                "transformers.tokenization_utils_fast"
            )
    return False

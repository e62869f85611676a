"""Tiny GPT-2 models sized for 2 CPU cores: the embedded defaults and the test fixtures.

The shipped SFT policy and preference model, and the random models the tests load by
path, are all built here so that their configuration has one home.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    PreTrainedTokenizerBase,
)


@dataclass(frozen=True)
class TinyGPT2Size:
    """Width and depth of a tiny GPT-2 (see STACK.md for their measured speed)."""

    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 512


def tiny_gpt2_config(
    tokenizer: PreTrainedTokenizerBase, size: TinyGPT2Size = TinyGPT2Size(), **overrides: object
) -> GPT2Config:
    """A GPT-2 config matching ``tokenizer``'s vocabulary and special tokens, dropout off.

    Dropout is off because RLHF compares log-probabilities across forward passes
    (Huang et al. 2024, N+ implementation details: "disable dropout"). The activation is
    GPT-2's own tanh-approximated GELU, computed by PyTorch's fused kernel
    (``gelu_pytorch_tanh``) rather than ``gelu_new``'s eight elementwise ops: the same
    function to 5e-7, and a preference-model training step ~35% faster on 2 CPU cores.
    """
    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=size.n_positions,
        n_embd=size.n_embd,
        n_layer=size.n_layer,
        n_head=size.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        summary_first_dropout=0.0,
        activation_function="gelu_pytorch_tanh",
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )


def tiny_causal_lm(
    tokenizer: PreTrainedTokenizerBase, size: TinyGPT2Size = TinyGPT2Size(), seed: int = 0
) -> GPT2LMHeadModel:
    """A randomly initialised tiny GPT-2 language model (deterministic in ``seed``)."""
    torch.manual_seed(seed)
    return GPT2LMHeadModel(tiny_gpt2_config(tokenizer, size)).eval()


def tiny_sequence_classifier(
    tokenizer: PreTrainedTokenizerBase, size: TinyGPT2Size = TinyGPT2Size(), seed: int = 0
) -> GPT2ForSequenceClassification:
    """A randomly initialised tiny GPT-2 with a scalar head (deterministic in ``seed``)."""
    torch.manual_seed(seed)
    return GPT2ForSequenceClassification(tiny_gpt2_config(tokenizer, size, num_labels=1)).eval()


def deepened_sequence_classifier(
    causal_lm_path: str | Path, extra_layers: int, seed: int = 0
) -> GPT2ForSequenceClassification:
    """A scalar-head GPT-2 initialised from a causal LM, with ``extra_layers`` new blocks on top.

    Embeddings, the LM's blocks and its final layer norm are copied; the new blocks (stacked
    after the copied ones) and the score head are freshly initialised from ``seed``.

    Why deeper than the policy: judging a summary means checking each of its tokens against
    the post (an induction-style lookup that takes the policy's two layers) and then
    gathering those checks at the final token, where the score is read: one more layer.
    """
    if extra_layers < 0:
        raise ValueError(f"extra_layers must be >= 0, got {extra_layers}")
    torch.manual_seed(seed)  # the new score head's initialisation draws from it
    base = GPT2ForSequenceClassification.from_pretrained(causal_lm_path, num_labels=1)
    if extra_layers == 0:
        return base.eval()
    config = copy.deepcopy(base.config)
    config.n_layer = base.config.n_layer + extra_layers
    torch.manual_seed(seed)
    model = GPT2ForSequenceClassification(config)
    copied = {k: v for k, v in base.state_dict().items() if not k.startswith("score.")}
    missing, unexpected = model.load_state_dict(copied, strict=False)
    new_blocks = {f"transformer.h.{i}." for i in range(base.config.n_layer, config.n_layer)}
    assert not unexpected and all(
        k.startswith("score.") or any(k.startswith(b) for b in new_blocks) for k in missing
    ), (missing, unexpected)
    return model.eval()

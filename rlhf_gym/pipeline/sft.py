"""Supervised fine-tuning (SFT) of a causal language model on (prompt, completion) pairs.

The first stage of the RLHF pipeline (Ziegler et al. 2019; Stiennon et al. 2020;
Ouyang et al. 2022): the policy learns to imitate reference completions before RL
improves on them. Each example is laid out as the env and the sampler will see it::

    [pad ... pad] prompt tokens | completion tokens EOS
                   no loss      |  loss (next-token cross-entropy)

- The prompt and the completion are tokenised separately, exactly as at generation time,
  when the prompt is tokenised alone and the completion is produced token by token.
- EOS is appended explicitly (the tokenizer adds none) and trained on, so the policy
  learns to stop; the env ends an episode on EOS and the preference model reads its
  score at an EOS (`PreferenceModel.encode`).
- A prompt that does not fit loses its beginning (left truncation), never its task
  suffix such as ``"TL;DR:"``; completions are never truncated.
- Batches are left-padded with positions counted over real tokens only
  (`rlhf_gym.lm.layout`), the same layout the env and ``generate`` use.
- The loss is the mean cross-entropy over all completion and EOS tokens in the batch;
  prompt and padding positions carry the label ``-100`` and are ignored.

Optimisation: AdamW, linear warm-up then linear decay towards zero, gradient-norm clipping,
minibatch order from a seeded ``torch.Generator``.

Example:
    >>> from rlhf_gym.pipeline.tokenizer_training import train_bpe_tokenizer
    >>> from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm
    >>> tok = train_bpe_tokenizer(["Q: 1+1=\\nA: 2"] * 50, vocab_size=300)
    >>> batch = encode_sft_examples(tok, ["Q: 1+1=\\nA:"], [" 2"], max_length=32)
    >>> n_label = int((batch["labels"] != IGNORE_INDEX).sum())  # " 2" and EOS
    >>> n_label == len(tok(" 2")["input_ids"]) + 1
    True
    >>> model = tiny_causal_lm(tok, TinyGPT2Size(n_layer=1, n_embd=32, n_head=2))
    >>> result = train_sft(model, tok, ["Q: 1+1=\\nA:"] * 8, [" 2"] * 8,
    ...                    SFTConfig(epochs=2, batch_size=4, log_every=1), progress=False)
    >>> len(result.losses), result.losses[-1] < result.losses[0]
    (4, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase

from rlhf_gym.lm.layout import left_pad, position_ids_from_attention_mask
from rlhf_gym.lm.loading import check_tokenizer

IGNORE_INDEX = -100  # label of positions without loss (PyTorch's cross_entropy default)


@dataclass
class SFTConfig:
    """Hyper-parameters of supervised fine-tuning; defaults suit the tiny GPT-2s."""

    epochs: int = 1  # passes over the pairs
    batch_size: int = 32  # pairs per optimiser step
    learning_rate: float = 1e-3  # peak AdamW step size (tiny models tolerate large ones)
    warmup_fraction: float = 0.05  # share of the steps with linearly rising learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay (on weight matrices only)
    max_length: int = 512  # longest example in tokens (prompt is left-truncated to fit)
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    seed: int = 0  # seeds the minibatch order
    log_every: int = 10  # steps between progress-bar loss updates; also the final-loss window

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"SFTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 2:
            raise ValueError(f"SFTConfig.max_length must be >= 2, got {self.max_length}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"SFTConfig.learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.warmup_fraction <= 1.0:
            raise ValueError(
                f"SFTConfig.warmup_fraction must be in [0, 1], got {self.warmup_fraction}"
            )
        for name in ("weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SFTConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class SFTResult:
    """What a supervised fine-tuning run did."""

    losses: list[float]  # mean token cross-entropy of each optimiser step
    final_loss: float  # mean of the last `log_every` step losses
    tokens_seen: int  # non-pad tokens fed to the model (prompt + completion + EOS)
    completion_tokens_seen: int  # tokens the loss was computed on (completion + EOS)
    wall_time: float  # seconds


# Data layout ------------------------------------------------------------------------
def _tokenize_examples(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[str],
    max_length: int,
) -> list[tuple[list[int], int]]:
    """Per example: its token ids (prompt + completion + EOS) and the prompt's length."""
    _check_pairs(prompts, completions)
    check_tokenizer(tokenizer, "SFT tokenizer")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    encode = lambda texts: tokenizer(  # noqa: E731
        list(texts), add_special_tokens=False, return_attention_mask=False
    )["input_ids"]
    prompt_rows, completion_rows = encode(prompts), encode(completions)
    eos = tokenizer.eos_token_id
    examples = []
    for i, (prompt, completion) in enumerate(zip(prompt_rows, completion_rows, strict=True)):
        target = completion + [eos]
        room = max_length - len(target)  # tokens left for the prompt
        if not prompt:
            raise ValueError(
                f"prompt {i} ({prompts[i]!r}) has no tokens; the first completion token needs "
                "context to be predicted from"
            )
        if room < 1:
            raise ValueError(
                f"completion {i} has {len(target)} tokens with EOS, leaving no room for its "
                f"prompt within max_length={max_length}; raise max_length"
            )
        prompt = prompt[-room:]  # left truncation keeps the task suffix
        examples.append((prompt + target, len(prompt)))
    return examples


def _collate(
    examples: Sequence[tuple[list[int], int]], pad_token_id: int
) -> dict[str, torch.Tensor]:
    """Left-pad examples into input_ids, attention_mask, position_ids and labels, all (B, T)."""
    input_ids, attention_mask = left_pad([ids for ids, _ in examples], pad_token_id)  # (B, T)
    labels = input_ids.clone()
    width = input_ids.shape[1]
    # A row of n tokens with a prompt of p occupies columns [T-n, T); its prompt the first p.
    starts = torch.tensor([width - len(ids) + p for ids, p in examples])  # (B,) first label column
    columns = torch.arange(width)  # (T,)
    labels[columns.unsqueeze(0) < starts.unsqueeze(1)] = IGNORE_INDEX  # prompt and padding
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids_from_attention_mask(attention_mask),
        "labels": labels,
    }


def encode_sft_examples(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[str],
    max_length: int,
) -> BatchEncoding:
    """Lay out (prompt, completion) pairs as one left-padded SFT batch.

    Args:
        tokenizer: needs an EOS token and a distinct pad token.
        prompts: B prompt texts; each must produce at least one token.
        completions: B completion texts (may be empty: then only EOS is a target).
        max_length: longest row; prompts lose their beginning to fit.

    Returns:
        ``input_ids``, ``attention_mask``, ``position_ids`` and ``labels``, each (B, T)
        int64; ``labels`` equals ``input_ids`` on completion and EOS tokens and
        ``IGNORE_INDEX`` on prompt and padding tokens.

    Raises:
        ValueError: mismatched or empty inputs, a prompt without tokens, or a
            completion that does not fit in ``max_length`` with one prompt token.
    """
    examples = _tokenize_examples(tokenizer, prompts, completions, max_length)
    return BatchEncoding(_collate(examples, tokenizer.pad_token_id))


def _completion_token_losses(
    model: PreTrainedModel, batch: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Cross-entropy of each next token, (B, K), zero where the label is ignored.

    Rows are left-padded, so every label sits in the last columns; the LM head runs only
    on the K positions that predict them (``logits_to_keep``) instead of all T, which
    saves most of the vocabulary projection's cost when prompts are long.
    """
    labels = batch["labels"]  # (B, T)
    # Every row has a label (EOS at least) and a prompt token before it, so first_label >= 1.
    first_label = int((labels != IGNORE_INDEX).any(dim=0).nonzero()[0])
    keep = labels.shape[1] - first_label + 1  # positions first_label-1 .. T-1
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=keep,
    ).logits  # (B, K+1, V) for the last K+1 positions
    targets = labels[:, first_label:]  # (B, K): token t is predicted from positions < t
    return F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2),  # (B, V, K), as cross_entropy expects
        targets,
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )


# Training ---------------------------------------------------------------------------
def train_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[str],
    config: SFTConfig,
    *,
    progress: bool = True,
) -> SFTResult:
    """Fine-tune ``model`` in place to produce ``completions`` (then EOS) after ``prompts``.

    Args:
        model: a causal LM (e.g. ``GPT2LMHeadModel``); trained on its current device and
            returned to its previous train/eval mode afterwards.
        tokenizer: its tokenizer (EOS and a distinct pad token).
        prompts: N prompt texts.
        completions: N target completions, without EOS (it is appended).
        config: hyper-parameters.
        progress: show a tqdm bar with the running loss.

    Returns:
        Per-step losses, the final loss, token counts and wall time.

    Raises:
        ValueError: see `encode_sft_examples`.
    """
    started = time.perf_counter()
    examples = _tokenize_examples(tokenizer, prompts, completions, config.max_length)
    device = next(model.parameters()).device
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total_steps = config.epochs * steps_per_epoch

    # Set-up
    optimizer = adamw(model, config.learning_rate, config.weight_decay)
    scheduler = linear_warmup_decay(optimizer, total_steps, config.warmup_fraction)
    generator = torch.Generator().manual_seed(config.seed)
    was_training = model.training
    model.train()

    losses: list[float] = []
    tokens_seen = completion_tokens_seen = 0
    bar = tqdm(total=total_steps, desc="SFT", disable=not progress, dynamic_ncols=True)
    try:
        for _ in range(config.epochs):
            order = torch.randperm(len(examples), generator=generator).tolist()
            for start in range(0, len(order), config.batch_size):
                batch = _collate(
                    [examples[i] for i in order[start : start + config.batch_size]],
                    tokenizer.pad_token_id,
                )
                batch = {k: v.to(device) for k, v in batch.items()}

                # Loss: mean over the batch's completion tokens (not a mean of row means)
                token_losses = _completion_token_losses(model, batch)  # (B, K)
                n_targets = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
                loss = token_losses.sum() / n_targets

                # Update
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()

                # Logging
                losses.append(loss.item())
                tokens_seen += int(batch["attention_mask"].sum())
                completion_tokens_seen += int(n_targets)
                bar.update(1)
                if len(losses) % config.log_every == 0:
                    window = losses[-config.log_every :]
                    bar.set_postfix(loss=f"{sum(window) / len(window):.4f}")
    finally:
        bar.close()
        model.train(was_training)

    window = losses[-config.log_every :]
    return SFTResult(
        losses=losses,
        final_loss=sum(window) / len(window),
        tokens_seen=tokens_seen,
        completion_tokens_seen=completion_tokens_seen,
        wall_time=time.perf_counter() - started,
    )


def adamw(model: torch.nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, with weight decay on matrices only.

    Biases, LayerNorm gains and other vectors are not decayed (nanoGPT's rule: decay
    parameters with >= 2 dimensions, i.e. weights of matmuls and embeddings).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=learning_rate,
    )


def linear_warmup_decay(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rising linearly to its peak over the warm-up, then falling linearly to 0.

    Unlike ``get_linear_schedule_with_warmup`` no step runs at learning rate 0: the first
    warm-up step already uses ``1/warmup`` of the peak and the last step ``1/decay_steps``.

    Linear decay is the schedule of the SFT and reward-model stages in Stiennon et al. (2020).

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = linear_warmup_decay(opt, total_steps=4, warmup_fraction=0.5)
        >>> lrs = []
        >>> for _ in range(4):
        ...     lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
        >>> lrs
        [0.5, 1.0, 1.0, 0.5]
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    warmup = round(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# Evaluation -------------------------------------------------------------------------
@torch.no_grad()
def completion_log_likelihood(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[str],
    batch_size: int = 64,
    *,
    max_length: int | None = None,
) -> torch.Tensor:
    """Log-probability of each completion followed by EOS, given its prompt.

    The sum over completion and EOS tokens of ``log p(token | earlier tokens)``, with the
    same layout as training (so it is minus the summed SFT loss of each pair).

    Args:
        model: a causal LM; evaluated in eval mode, its previous mode restored.
        tokenizer: its tokenizer.
        prompts: B prompt texts.
        completions: B completion texts, without EOS.
        batch_size: pairs per forward pass.
        max_length: longest row in tokens; defaults to the model's maximum positions.

    Returns:
        (B,) float32 on CPU, each <= 0.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_length is None:
        max_length = int(model.config.max_position_embeddings)
    examples = _tokenize_examples(tokenizer, prompts, completions, max_length)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        sums = []
        for start in range(0, len(examples), batch_size):
            batch = _collate(examples[start : start + batch_size], tokenizer.pad_token_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            sums.append(-_completion_token_losses(model, batch).sum(dim=1).cpu())  # (b,)
    finally:
        model.train(was_training)
    return torch.cat(sums)


def _check_pairs(prompts: Sequence[str], completions: Sequence[str]) -> None:
    if len(prompts) != len(completions):
        raise ValueError(
            f"got {len(prompts)} prompts but {len(completions)} completions; they must pair up"
        )
    if len(prompts) == 0:
        raise ValueError("got no (prompt, completion) pairs; need at least one")


__all__ = [
    "IGNORE_INDEX",
    "SFTConfig",
    "SFTResult",
    "adamw",
    "completion_log_likelihood",
    "encode_sft_examples",
    "linear_warmup_decay",
    "train_sft",
]

"""Sample text completions from a causal LM in batches, reproducibly.

Used to build comparison data (SFT samples at several temperatures) and by benchmarks
that start from prompt strings rather than an env. It runs the library's one sampling
path: `rlhf_gym.lm.policy.CausalLMPolicy` prefills the left-padded prompts once and
decodes one token per step from its KV cache, choosing tokens with
`CausalLMPolicy.sample`, as the env rollouts (`rlhf_gym.env.rollout.collect_episodes`)
do. Sampling is from exactly the softmax of ``logits / temperature``: no top-k, no top-p,
no repetition penalty, whatever the model's saved ``generation_config`` says, because
RLHF compares these samples with log-probabilities computed the same way (Huang et al.
2024, "The N+ Implementation Details of RLHF with PPO": sample and score with one
temperature; top-k sampling makes single-sample KL estimates go negative).

Left padding. Prompts are left-padded so that every row's next token lands in the same
column, with position ids counted over real tokens
(`rlhf_gym.lm.layout.position_ids_from_attention_mask`), so a padded row sees the same
positions as the same prompt alone. ``tests/lm/test_sampling.py`` checks that greedy
decoding of a padded batch equals each prompt alone and equals ``generate()``.

Example:
    >>> from rlhf_gym.pipeline.tokenizer_training import train_bpe_tokenizer
    >>> from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm
    >>> tok = train_bpe_tokenizer(["a b c d e"] * 20, vocab_size=300)
    >>> model = tiny_causal_lm(tok, TinyGPT2Size(n_layer=1, n_embd=32, n_head=2))
    >>> kwargs = dict(max_new_tokens=5, temperature=1.0, max_prompt_tokens=8)
    >>> first = sample_completions(model, tok, ["a b", "c"], seed=3, **kwargs)
    >>> first == sample_completions(model, tok, ["a b", "c"], seed=3, **kwargs)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf_gym.lm.layout import decode_exact, left_pad, tokenize_left_truncated
from rlhf_gym.lm.loading import check_tokenizer
from rlhf_gym.lm.policy import CausalLMPolicy


@torch.no_grad()
def sample_completions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    max_prompt_tokens: int,
    batch_size: int = 64,
    progress: str | None = None,
) -> list[str]:
    """Complete each prompt by sampling (or greedy decoding) from ``model``.

    Args:
        model: a causal LM; run in eval mode (its mode is restored).
        tokenizer: its tokenizer (EOS and a distinct pad token).
        prompts: the prompt texts; each must produce at least one token.
        max_new_tokens: most tokens generated per prompt, EOS included.
        temperature: softmax temperature; 0 means greedy decoding.
        seed: seeds the sampling (a generator of its own: the global torch RNG is not
            touched); the same seed, prompts and ``batch_size`` give the same completions.
        max_prompt_tokens: prompts keep at most their last this many tokens.
        batch_size: prompts decoded together.
        progress: a label to show a progress bar over prompts with; None shows none.

    Returns:
        One completion text per prompt: the generated tokens before the first EOS,
        decoded without skipping special tokens (as the env decodes responses). A
        completion that hit ``max_new_tokens`` without EOS is returned as it is.

    Raises:
        ValueError: a non-positive size, a negative or non-finite temperature, or a
            prompt with no tokens.
    """
    for name, value in (
        ("max_new_tokens", max_new_tokens),
        ("max_prompt_tokens", max_prompt_tokens),
        ("batch_size", batch_size),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0 (0 = greedy), got {temperature}")
    check_tokenizer(tokenizer, "generation tokenizer")
    if not prompts:
        return []

    rows = tokenize_left_truncated(tokenizer, prompts, max_prompt_tokens)
    empty = [i for i, row in enumerate(rows) if not row]
    if empty:
        raise ValueError(f"prompts {empty[:5]} have no tokens; generation needs a non-empty prompt")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    device = next(model.parameters()).device
    greedy = temperature == 0
    policy = CausalLMPolicy(model, temperature=1.0 if greedy else temperature)
    generator = torch.Generator(device).manual_seed(seed)
    was_training = model.training
    model.eval()
    texts: list[str] = []
    try:
        bar = tqdm(total=len(rows), desc=progress, unit="prompt", disable=progress is None, leave=False)
        for start in range(0, len(rows), batch_size):
            batch_rows = rows[start : start + batch_size]
            input_ids, attention_mask = left_pad(batch_rows, pad)  # (b, P) int64
            generated = _decode(policy, input_ids.to(device), attention_mask.to(device), max_new_tokens, eos,
                                generator=generator, greedy=greedy)
            texts.extend(_decode_until_eos(tokenizer, generated, eos))
            bar.update(len(batch_rows))
        bar.close()
    finally:
        model.train(was_training)
    return texts


def _decode(
    policy: CausalLMPolicy,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: int,
    *,
    generator: torch.Generator,
    greedy: bool,
) -> torch.Tensor:
    """(b, n) tokens, ``n <= max_new_tokens``: KV-cached steps until every row wrote EOS.

    A row that finished keeps stepping (its later tokens are cut at its EOS by the caller)
    but its tokens are masked out of its context, as in the env rollouts.
    """
    logits, state = policy.prefill(input_ids, attention_mask)
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    columns = []
    for _ in range(max_new_tokens):
        tokens, _ = policy.sample(logits, generator, greedy=greedy)
        columns.append(tokens)
        finished |= tokens == eos_token_id
        if bool(finished.all()) or len(columns) == max_new_tokens:
            break
        logits = policy.decode(tokens, state)
    return torch.stack(columns, dim=1)


def _decode_until_eos(
    tokenizer: PreTrainedTokenizerBase, generated: torch.Tensor, eos_token_id: int
) -> list[str]:
    """Decode each row of ``generated`` (b, n) up to (not including) its first EOS."""
    is_eos = generated == eos_token_id  # (b, n)
    has_eos = is_eos.any(dim=1)
    lengths = torch.where(has_eos, is_eos.int().argmax(dim=1), generated.shape[1]).tolist()
    return decode_exact(tokenizer, [row[:n] for row, n in zip(generated.tolist(), lengths, strict=True)])


__all__ = ["sample_completions"]

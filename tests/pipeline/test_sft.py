"""Supervised fine-tuning: the masked layout, the loss it defines, and that a tiny model learns."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlhf_gym.lm.sampling import sample_completions
from rlhf_gym.pipeline.sft import (
    IGNORE_INDEX,
    SFTConfig,
    completion_log_likelihood,
    encode_sft_examples,
    train_sft,
)
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm
from rlhf_gym.pipeline.tokenizer_training import train_bpe_tokenizer

SIZE = TinyGPT2Size(n_layer=2, n_embd=64, n_head=2, n_positions=128)
ANSWERS = {"sky": " blue", "grass": " green", "snow": " white", "coal": " black", "sun": " red"}
FILLER = ["so", "then", "really", "the", "yard", "today", "ok"]


def fixed_answer_task(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Prompts asking a colour after random filler (so answers sit at varied positions)."""
    rng = np.random.default_rng(seed)
    prompts, completions = [], []
    for i in range(n):
        thing = list(ANSWERS)[i % len(ANSWERS)]
        filler = " ".join(rng.choice(FILLER, size=int(rng.integers(0, 6))))
        prompts.append(f"{filler} Q: colour of {thing}?\nA:")
        completions.append(ANSWERS[thing])
    return prompts, completions


@pytest.fixture(scope="module")
def tokenizer():
    prompts, completions = fixed_answer_task(300, seed=0)
    return train_bpe_tokenizer([p + c for p, c in zip(prompts, completions)], vocab_size=300)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_labels_cover_completion_and_eos_only(tokenizer):
    prompts = ["the yard Q: colour of sky?\nA:", "Q: colour of sun?\nA:"]
    completions = [" blue", ""]
    batch = encode_sft_examples(tokenizer, prompts, completions, max_length=64)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        expected = ids(tokenizer, prompt) + ids(tokenizer, completion) + [eos]
        n = len(expected)
        mask = batch["attention_mask"][row]
        assert batch["input_ids"][row, -n:].tolist() == expected
        assert mask.tolist() == [0] * (mask.numel() - n) + [1] * n
        assert (batch["input_ids"][row][mask == 0] == pad).all()
        target = ids(tokenizer, completion) + [eos]
        labelled = batch["labels"][row] != IGNORE_INDEX
        assert batch["labels"][row][labelled].tolist() == target  # never a prompt or pad token
        assert labelled[-len(target) :].all() and not labelled[: -len(target)].any()
        assert batch["position_ids"][row, -n:].tolist() == list(range(n))


def test_long_prompt_loses_its_beginning_not_its_completion(tokenizer):
    prompt, completion = "so then really the yard today ok Q: colour of coal?\nA:", " black"
    target = ids(tokenizer, completion) + [tokenizer.eos_token_id]
    max_length = len(target) + 5
    batch = encode_sft_examples(tokenizer, [prompt], [completion], max_length=max_length)
    kept_prompt = ids(tokenizer, prompt)[-5:]
    assert len(ids(tokenizer, prompt)) > 5
    assert batch["input_ids"][0].tolist() == kept_prompt + target
    assert tokenizer.decode(kept_prompt).endswith("?\nA:")


def manual_log_likelihood(model, tokenizer, prompt: str, completion: str) -> torch.Tensor:
    """Sum of completion+EOS log-probs from one unpadded forward pass, computed by hand."""
    prompt_ids = ids(tokenizer, prompt)
    full = torch.tensor([prompt_ids + ids(tokenizer, completion) + [tokenizer.eos_token_id]])
    with torch.no_grad():
        log_probs = model(input_ids=full).logits.log_softmax(-1)[0]  # (T, V)
    targets = range(len(prompt_ids), full.shape[1])  # positions of completion tokens and EOS
    return sum(log_probs[t - 1, full[0, t]] for t in targets)


def test_loss_is_the_mean_over_completion_tokens_of_padded_batches(tokenizer):
    prompts, completions = fixed_answer_task(8, seed=1)
    completions[3] = " a much longer answer than the others"  # rows of very different length
    model = tiny_causal_lm(tokenizer, SIZE, seed=0)
    manual = torch.stack(
        [manual_log_likelihood(model, tokenizer, p, c) for p, c in zip(prompts, completions)]
    )
    # Batched and left-padded, with a batch size that splits the rows unevenly.
    batched = completion_log_likelihood(model, tokenizer, prompts, completions, batch_size=3)
    assert batched.shape == (8,)
    torch.testing.assert_close(batched, manual, atol=1e-4, rtol=1e-4)
    # The first training step sees all pairs before any update: its loss is the same sum,
    # divided by the number of completion tokens (prompt tokens contribute nothing).
    n_targets = sum(len(ids(tokenizer, c)) + 1 for c in completions)
    config = SFTConfig(batch_size=8)
    model_copy = copy.deepcopy(model)
    result = train_sft(model_copy, tokenizer, prompts, completions, config, progress=False)
    assert result.losses[0] == pytest.approx(-manual.sum().item() / n_targets, rel=1e-4)
    assert result.completion_tokens_seen == n_targets


def test_labels_do_not_depend_on_the_prompt(tokenizer):
    """Two prompts of equal length with the same completion: identical labels."""
    prompts = ["so Q: colour of sky?\nA:", "ok Q: colour of sky?\nA:"]
    batch = encode_sft_examples(tokenizer, prompts, [" blue", " blue"], max_length=64)
    assert not torch.equal(batch["input_ids"][0], batch["input_ids"][1])  # the prompts differ
    assert torch.equal(batch["labels"][0], batch["labels"][1])


@pytest.mark.slow
def test_sft_learns_fixed_answers_and_to_stop(tokenizer):
    prompts, completions = fixed_answer_task(192, seed=2)
    model = tiny_causal_lm(tokenizer, SIZE, seed=0)
    config = SFTConfig(epochs=8, batch_size=16, learning_rate=3e-3, log_every=5)
    result = train_sft(model, tokenizer, prompts, completions, config, progress=False)
    assert not model.training  # its previous (eval) mode is restored
    assert len(result.losses) == 8 * 12
    assert result.final_loss < 0.2 * result.losses[0]
    assert result.tokens_seen > result.completion_tokens_seen > 0
    held_out, targets = fixed_answer_task(12, seed=3)  # unseen filler
    greedy = sample_completions(
        model, tokenizer, held_out, max_new_tokens=6, temperature=0.0, seed=0, max_prompt_tokens=64
    )
    assert greedy == targets  # right answer, then EOS (no trailing tokens)
    wrong = [" green" if t != " green" else " red" for t in targets]
    assert (
        completion_log_likelihood(model, tokenizer, held_out, targets)
        > completion_log_likelihood(model, tokenizer, held_out, wrong)
    ).all()


def test_minibatch_order_is_seeded(tokenizer):
    prompts, completions = fixed_answer_task(24, seed=4)

    def losses(seed: int) -> list[float]:
        model = tiny_causal_lm(tokenizer, SIZE, seed=0)
        config = SFTConfig(batch_size=4, seed=seed)
        return train_sft(model, tokenizer, prompts, completions, config, progress=False).losses

    first = losses(0)
    assert losses(0) == first
    assert losses(1) != first


@pytest.mark.parametrize(
    ("prompts", "completions", "max_length", "match"),
    [
        (["a", "b"], [" c"], 64, "2 prompts but 1 completions"),
        ([], [], 64, "no \\(prompt, completion\\) pairs"),
        (["", "Q:"], [" a", " b"], 64, "prompt 0 .* has no tokens"),
        (["Q:"], [" so then really the yard today"], 4, "completion 0 has .* max_length=4"),
    ],
)
def test_bad_data_raises(tokenizer, prompts, completions, max_length: int, match: str):
    with pytest.raises(ValueError, match=match):
        encode_sft_examples(tokenizer, prompts, completions, max_length)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("learning_rate", -1.0),
        ("warmup_fraction", 1.5),
        ("max_length", 1),
        ("grad_clip", -1.0),
    ],
)
def test_bad_config_raises(field: str, value):
    with pytest.raises(ValueError, match=f"SFTConfig.{field} .*got {value}"):
        SFTConfig(**{field: value})

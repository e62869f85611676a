"""Bradley–Terry training of the preference model, and the accuracy that measures it."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rlhf_gym.pipeline.preference_training import (
    ComparisonGroup,
    PreferenceTrainingConfig,
    preference_accuracy,
    train_preference_model,
    train_preference_model_on_groups,
)
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_sequence_classifier
from rlhf_gym.pipeline.tokenizer_training import train_bpe_tokenizer
from rlhf_gym.rewards.preference_model import PreferenceModel, RewardNormalization

SIZE = TinyGPT2Size(n_layer=2, n_embd=32, n_head=2, n_positions=128)
WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "yard", "today", "fine", "okay"]
GOOD = "great"  # the annotators' secret: chosen responses say it


def comparisons(n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """Pairs of responses that differ in one word: GOOD (chosen) or another word (rejected)."""
    rng = np.random.default_rng(seed)
    prompts, chosen, rejected = [], [], []
    for _ in range(n):
        post = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 8))))
        prompts.append(f"POST: {post}\nTL;DR:")
        words = list(rng.choice(WORDS, size=int(rng.integers(3, 8))))
        slot = int(rng.integers(len(words) + 1))
        chosen.append(" " + " ".join(words[:slot] + [GOOD] + words[slot:]))
        rejected.append(" " + " ".join(words[:slot] + [str(rng.choice(WORDS))] + words[slot:]))
    return prompts, chosen, rejected


@pytest.fixture(scope="module")
def tokenizer():
    prompts, chosen, rejected = comparisons(300, seed=0)
    return train_bpe_tokenizer([p + c for p, c in zip(prompts, chosen)] + rejected, vocab_size=300)


@pytest.mark.slow
def test_training_lifts_accuracy_on_a_learnable_preference(tokenizer):
    classifier = tiny_sequence_classifier(tokenizer, SIZE, seed=0)
    # A random head may happen to like GOOD already; a zero head has no preference at all:
    # every pair is a tie (accuracy 0, as ties count wrong) and the loss starts at log 2.
    torch.nn.init.zeros_(classifier.score.weight)
    preference_model = PreferenceModel(classifier, tokenizer, max_length=64)
    held_out = comparisons(200, seed=2)
    assert preference_accuracy(preference_model, *held_out) == 0.0
    config = PreferenceTrainingConfig(epochs=3, batch_size=32, learning_rate=3e-3, log_every=4)
    data = comparisons(384, seed=1)

    def held_out_accuracy(model: PreferenceModel) -> dict[str, float]:
        assert not model.model.training  # evaluated as it will be used
        return {"held_out_accuracy": preference_accuracy(model, *held_out)}

    result = train_preference_model(
        preference_model, *data, config, progress=False, on_epoch_end=held_out_accuracy
    )
    assert len(result.losses) == len(result.accuracies) == 3 * 12
    curve = [m["held_out_accuracy"] for m in result.epoch_metrics]
    assert len(curve) == 3 and 0.0 < curve[0] <= curve[-1]  # from all ties (0.0) before training
    assert result.pairs_seen == 3 * 384
    assert result.losses[0] == pytest.approx(np.log(2.0))
    assert result.final_loss < 0.3
    assert result.final_accuracy > 0.9
    assert preference_accuracy(preference_model, *held_out) == curve[-1] > 0.9
    assert not preference_model.model.training
    assert preference_model.normalization == RewardNormalization()  # left to fit_normalization


def test_first_step_loss_is_the_bradley_terry_loss(tokenizer):
    preference_model = PreferenceModel(tiny_sequence_classifier(tokenizer, SIZE, seed=3), tokenizer)
    prompts, chosen, rejected = comparisons(16, seed=4)
    r_chosen = preference_model.raw_scores(prompts, chosen)
    margin = r_chosen - preference_model.raw_scores(prompts, rejected)
    expected = -torch.log(torch.sigmoid(margin.double())).mean().item()
    config = PreferenceTrainingConfig(batch_size=16)
    result = train_preference_model(
        copy.deepcopy(preference_model), prompts, chosen, rejected, config, progress=False
    )
    assert result.losses[0] == pytest.approx(expected, rel=1e-4)  # before any update
    assert result.accuracies[0] == pytest.approx((margin > 0).double().mean().item())


def test_minibatch_order_is_seeded(tokenizer):
    data = comparisons(24, seed=5)

    def losses(seed: int) -> list[float]:
        classifier = tiny_sequence_classifier(tokenizer, SIZE, seed=0)
        preference_model = PreferenceModel(classifier, tokenizer)
        config = PreferenceTrainingConfig(batch_size=4, seed=seed)
        return train_preference_model(preference_model, *data, config, progress=False).losses

    first = losses(0)
    assert losses(0) == first
    assert losses(1) != first


def _flat_scores(preference_model, prompts, responses):
    flat_prompts = [p for p, rs in zip(prompts, responses) for _ in rs]
    encoded = preference_model.encode(flat_prompts, [r for rs in responses for r in rs])
    return preference_model.forward_encoded(encoded["input_ids"], encoded["attention_mask"])


@pytest.mark.parametrize(
    ("max_length", "rows_per_chunk"),
    [(64, 16), (64, 3), (12, 16)],  # 3: responses in three length-sorted chunks; 12: no shared prefix
)
def test_forward_groups_matches_full_rows(tokenizer, max_length: int, rows_per_chunk: int):
    preference_model = PreferenceModel(
        tiny_sequence_classifier(tokenizer, SIZE, seed=6), tokenizer, max_length=max_length
    )
    prompts = ["POST: the cat sat on a mat today\nTL;DR:", "POST: a dog\nTL;DR:", "POST: ran\nTL;DR:"]
    responses = [
        [" the cat sat", " the cat ran on a mat", " great"],
        [" a dog", " a dog ran fine today okay"],  # share a token past the prompt
        [" ran", " ran", " okay the yard"],  # duplicates are scored twice, identically
    ]
    shared = preference_model.forward_groups(prompts, responses, rows_per_chunk)
    full = _flat_scores(preference_model, prompts, responses)
    assert shared.shape == (8,)
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=1e-5)

    weights = torch.linspace(-1.0, 1.0, 8)
    params = list(preference_model.model.parameters())
    shared_grads = torch.autograd.grad((weights * shared).sum(), params, allow_unused=True)
    full_grads = torch.autograd.grad((weights * full).sum(), params, allow_unused=True)
    for a, b in zip(shared_grads, full_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_prompt_sharing_does_not_change_training(tokenizer):
    data = comparisons(32, seed=7)
    groups = [ComparisonGroup(p, (c, r, " okay"), ((0, 1), (0, 2))) for p, c, r in zip(*data)]

    def losses(share_prompts: bool) -> list[float]:
        preference_model = PreferenceModel(tiny_sequence_classifier(tokenizer, SIZE, seed=0), tokenizer)
        config = PreferenceTrainingConfig(batch_size=8, epochs=2, share_prompts=share_prompts)
        return train_preference_model_on_groups(preference_model, groups, config, progress=False).losses

    np.testing.assert_allclose(losses(True), losses(False), rtol=1e-4)


def test_forward_groups_rejects_empty_chunks(tokenizer):
    preference_model = PreferenceModel(tiny_sequence_classifier(tokenizer, SIZE, seed=0), tokenizer)
    with pytest.raises(ValueError, match="rows_per_chunk must be >= 1, got 0"):
        preference_model.forward_groups(["POST: a\nTL;DR:"], [[" a", " b"]], rows_per_chunk=0)


class WordCounter(torch.nn.Module):
    """A hand-made 'sequence classifier': the score is how often one token id occurs."""

    def __init__(self, token_id: int, pad_token_id: int) -> None:
        super().__init__()
        self.token_id = token_id
        self.config = SimpleNamespace(num_labels=1, pad_token_id=pad_token_id)

    def forward(self, input_ids, attention_mask, position_ids):
        count = ((input_ids == self.token_id) & (attention_mask == 1)).sum(dim=1)
        return SimpleNamespace(logits=count.float().unsqueeze(1))  # (B, 1)


def test_accuracy_on_a_hand_made_case(tokenizer):
    (good,) = tokenizer(" " + GOOD)["input_ids"]
    counter = WordCounter(good, tokenizer.pad_token_id)
    preference_model = PreferenceModel(counter, tokenizer, batch_size=2)
    prompts = ["POST: a\nTL;DR:"] * 5
    chosen = [" great great", " great", " the cat", " great", " a"]
    rejected = [" great", " the", " great", " great", " a"]
    # Scores (chosen vs rejected): 2>1 right, 1>0 right, 0<1 wrong, 1=1 tie (wrong), 0=0 tie.
    assert preference_accuracy(preference_model, prompts, chosen, rejected) == pytest.approx(2 / 5)
    assert preference_accuracy(preference_model, prompts, rejected, chosen) == pytest.approx(1 / 5)


@pytest.mark.parametrize(
    ("prompts", "chosen", "rejected", "match"),
    [
        (["p"], [" a"], [" b", " c"], "1 prompts, 1 chosen and 2 rejected"),
        ([], [], [], "no comparisons"),
    ],
)
def test_bad_data_raises(tokenizer, prompts, chosen, rejected, match: str):
    preference_model = PreferenceModel(tiny_sequence_classifier(tokenizer, SIZE, seed=0), tokenizer)
    with pytest.raises(ValueError, match=match):
        preference_accuracy(preference_model, prompts, chosen, rejected)
    with pytest.raises(ValueError, match=match):
        train_preference_model(
            preference_model, prompts, chosen, rejected, PreferenceTrainingConfig(), progress=False
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("log_every", 0),
        ("learning_rate", 0.0),
        ("warmup_fraction", -0.1),
        ("weight_decay", -1.0),
    ],
)
def test_bad_config_raises(field: str, value):
    with pytest.raises(ValueError, match=f"PreferenceTrainingConfig.{field} .*got {value}"):
        PreferenceTrainingConfig(**{field: value})

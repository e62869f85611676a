"""The trained byte-level BPE tokenizer: special tokens, exact round-trips, saving, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf_gym.lm.loading import check_tokenizer, load_tokenizer
from rlhf_gym.pipeline.tokenizer_training import EOS_TOKEN, PAD_TOKEN, train_bpe_tokenizer

WORDS = ["the", "cat", "dog", "sat", "on", "a", "mat", "and", "ran", "to", "my", "yard", "today"]


def corpus(n: int = 300, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        post = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))
        summary = " ".join(rng.choice(WORDS, size=3))
        lines.append(f"POST: {post} {int(rng.integers(100))}.\nTL;DR: {summary}")
    return lines


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe_tokenizer(corpus(), vocab_size=320)


def test_special_tokens_are_distinct_and_not_added(tokenizer):
    check_tokenizer(tokenizer)
    assert tokenizer.eos_token == tokenizer.bos_token == EOS_TOKEN
    assert tokenizer.pad_token == PAD_TOKEN
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.convert_tokens_to_ids([EOS_TOKEN, PAD_TOKEN]) == [0, 1]
    # Callers append EOS themselves: encoding must add neither BOS nor EOS.
    text = " the cat sat"
    assert tokenizer(text)["input_ids"] == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.eos_token_id not in tokenizer(text)["input_ids"]
    # The special strings map to their single ids (so decoded responses re-encode the same).
    assert tokenizer(EOS_TOKEN + PAD_TOKEN)["input_ids"] == [0, 1]


def test_vocabulary_is_learned_and_bounded(tokenizer):
    assert 258 < len(tokenizer) <= 320
    # Frequent words became single tokens.
    assert len(tokenizer(" yard")["input_ids"]) == 1


@pytest.mark.parametrize(
    "text",
    [" the cat", "  two spaces", "\n newline", "tab\tand  gaps ", "TL;DR: 42 ~{}", "naïve ☃ 🐈"],
)
def test_decode_inverts_encode(tokenizer, text: str):
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=126), max_size=60))
def test_decode_inverts_encode_on_any_ascii(tokenizer, text: str):
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_pads_and_truncates_on_the_left(tokenizer):
    batch = tokenizer([" the", " the cat sat on"], padding=True)
    short = batch["input_ids"][0]
    assert short[-1] == tokenizer(" the")["input_ids"][-1]
    assert short[0] == tokenizer.pad_token_id and batch["attention_mask"][0][0] == 0
    ids = tokenizer(" the cat sat on a mat", truncation=True, max_length=2)["input_ids"]
    assert tokenizer.decode(ids) == " a mat"


def test_round_trip_through_save_and_load_tokenizer(tokenizer, tmp_path: Path):
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    loaded = load_tokenizer(str(tmp_path))
    assert (loaded.eos_token_id, loaded.pad_token_id, loaded.bos_token_id) == (0, 1, 0)
    assert loaded.padding_side == "left" and loaded.truncation_side == "left"
    assert len(loaded) == len(tokenizer)
    for text in corpus(20, seed=1) + ["  spaced  out "]:
        assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
        assert loaded.decode(loaded(text)["input_ids"]) == text


def test_training_is_deterministic():
    first = train_bpe_tokenizer(corpus(), vocab_size=300)
    second = train_bpe_tokenizer(corpus(), vocab_size=300)
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    other = train_bpe_tokenizer(corpus(seed=5)[:50], vocab_size=300)
    assert other.backend_tokenizer.to_str() != first.backend_tokenizer.to_str()


@pytest.mark.parametrize(
    ("texts", "kwargs", "match"),
    [
        (["a b"], {"vocab_size": 100}, "vocab_size must be >= 258.*got 100"),
        (["a b"], {"min_frequency": 0}, "min_frequency must be >= 1, got 0"),
        ([], {}, "non-empty training text, got 0"),
        (["", ""], {}, "non-empty training text, got 2"),
    ],
)
def test_bad_arguments_raise(texts, kwargs, match: str):
    with pytest.raises(ValueError, match=match):
        train_bpe_tokenizer(texts, **kwargs)

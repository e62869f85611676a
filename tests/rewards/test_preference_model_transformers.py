"""A saved preference model behaves under plain transformers as under our wrapper.

A user who loads it with ``AutoTokenizer`` + ``AutoModelForSequenceClassification`` and
calls ``model(**tokenizer(texts, padding=True))`` passes no position ids. GPT-2 has
absolute positions, so that is only right if the saved tokenizer pads on the right (a
left-padded row is read at shifted positions and scores differently from the same row
alone: the first shipped model gave 0.489 batched and 1.380 alone).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rlhf_gym.envs.summarize import TASK
from rlhf_gym.envs.summarize.world import generate_post, prompt_text
from rlhf_gym.rewards.preference_model import PreferenceModel


def _texts_of_different_lengths(eos: str) -> tuple[list[str], list[str], list[str]]:
    posts = [generate_post(10_100_000 + i) for i in range(6)]
    prompts = [prompt_text(p) for p in posts]
    # Responses of very different lengths, so the batch needs plenty of padding.
    responses = [p.reference if i % 2 else p.tldr[:15] for i, p in enumerate(posts)]
    return prompts, responses, [p + r + eos for p, r in zip(prompts, responses)]


def _plain_scores(folder: Path, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        batched = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits[:, 0]
        alone = torch.stack([model(**tokenizer([t], return_tensors="pt")).logits[0, 0] for t in texts])
    return batched, alone


def _member_folder() -> Path:
    folder = TASK.assets.preference_model_dir
    return folder / "member_0" if (folder / "member_0").is_dir() else folder


def test_shipped_preference_model_scores_padded_batches_like_single_rows() -> None:
    folder = _member_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.padding_side == "right"
    prompts, responses, texts = _texts_of_different_lengths(tokenizer.eos_token)
    batched, alone = _plain_scores(folder, texts)
    assert torch.allclose(batched, alone, atol=1e-4), (batched, alone)
    # And plain transformers reads the same raw score as our wrapper, which appends EOS itself.
    ours = PreferenceModel.from_pretrained(folder).raw_scores(prompts, responses)
    assert torch.allclose(batched, ours, atol=1e-4), (batched, ours)


def test_saved_preference_model_pads_right_for_plain_transformers(toy_dir: Path, tmp_path: Path) -> None:
    model = PreferenceModel.from_pretrained(toy_dir / "preference_model")
    assert model.tokenizer.padding_side == "left"  # our loader pads left for its own use
    model.save_pretrained(tmp_path / "saved")
    assert model.tokenizer.padding_side == "left"  # saving leaves the live tokenizer alone
    texts = ["a b c d e f g h" + model.tokenizer.eos_token, "a b" + model.tokenizer.eos_token, "c d e" + model.tokenizer.eos_token]
    batched, alone = _plain_scores(tmp_path / "saved", texts)
    assert torch.allclose(batched, alone, atol=1e-5), (batched, alone)


def test_left_padding_without_position_ids_would_shift_scores(toy_dir: Path, tmp_path: Path) -> None:
    """The failure the right padding avoids is real: the same check fails when saved left-padded."""
    model = PreferenceModel.from_pretrained(toy_dir / "preference_model")
    model.model.save_pretrained(tmp_path / "left")
    model.tokenizer.padding_side = "left"
    model.tokenizer.save_pretrained(tmp_path / "left")
    texts = ["a b c d e f g h" + model.tokenizer.eos_token, "a b" + model.tokenizer.eos_token]
    batched, alone = _plain_scores(tmp_path / "left", texts)
    assert not torch.allclose(batched, alone, atol=1e-5)

"""Components by name or path: tokenizers, preference models and datasets, loaded offline."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import torch

from rlhf_gym.env.prompts import DatasetPromptSource
from rlhf_gym.lm.loading import MissingArtifactError, load_tokenizer
from rlhf_gym.rewards.preference_model import (
    NORMALIZATION_FILE,
    PreferenceModel,
    RewardNormalization,
)


def test_tokenizer_loads_by_path_padded_and_truncated_left(toy_dir: Path):
    tokenizer = load_tokenizer(str(toy_dir / "tokenizer"))
    assert tokenizer.padding_side == "left" and tokenizer.truncation_side == "left"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_preference_model_round_trip_keeps_scores_and_normalisation(toy_dir: Path, tmp_path: Path):
    model = PreferenceModel.from_pretrained(toy_dir / "preference_model")
    prompts, responses = ["POST: I saw 3 cats.\nTL;DR:"] * 2, [" 3 cats", " dogs dogs"]
    model.fit_normalization(["POST: a\nTL;DR:", "POST: b\nTL;DR:", "POST: c\nTL;DR:"], [" a", " b b", " c"])
    model.save_pretrained(tmp_path / "pm")
    assert (tmp_path / "pm" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "pm" / NORMALIZATION_FILE).read_text())["std"] == model.normalization.std
    again = PreferenceModel.from_pretrained(tmp_path / "pm")
    assert again.normalization == model.normalization
    assert torch.allclose(again.score(prompts, responses), model.score(prompts, responses))


def test_fit_normalization_centres_references(toy_preference_model: PreferenceModel):
    model = PreferenceModel(toy_preference_model.model, toy_preference_model.tokenizer)
    prompts = [f"POST: I saw {i} owls.\nTL;DR:" for i in range(20)]
    refs = [f" {i} owls" for i in range(20)]
    model.fit_normalization(prompts, refs)
    scores = model.score(prompts, refs).double()
    assert abs(scores.mean().item()) < 1e-5 and abs(scores.std().item() - 1) < 1e-4


def test_preference_scores_are_batch_invariant(toy_preference_model: PreferenceModel):
    """Left padding must not change a row's score (positions count real tokens only)."""
    prompts = ["POST: short\nTL;DR:", "POST: a much longer post about many many owls\nTL;DR:"]
    responses = [" owls", " a long long response"]
    together = toy_preference_model.raw_scores(prompts, responses)
    alone = torch.cat([toy_preference_model.raw_scores([p], [r]) for p, r in zip(prompts, responses)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_preference_input_ends_with_eos_and_keeps_response(toy_preference_model: PreferenceModel):
    model = PreferenceModel(toy_preference_model.model, toy_preference_model.tokenizer, max_length=8)
    batch = model.encode(["POST: " + "word " * 50 + "\nTL;DR:"], [" the end"])
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == 8 and ids[-1] == model.tokenizer.eos_token_id
    assert model.tokenizer.decode(ids[:-1]).endswith(" the end")


def test_preference_model_rejects_multi_label_heads(toy_preference_model: PreferenceModel):
    from transformers import GPT2ForSequenceClassification

    config = toy_preference_model.model.config
    two = GPT2ForSequenceClassification(type(config)(**{**config.to_dict(), "num_labels": 2}))
    with pytest.raises(ValueError, match="num_labels=2"):
        PreferenceModel(two, toy_preference_model.tokenizer)


def test_bad_normalisation_rejected():
    with pytest.raises(ValueError, match="std=0"):
        RewardNormalization(mean=0.0, std=0.0)


def test_missing_local_path_names_the_artifact(tmp_path: Path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(MissingArtifactError, match="preference model.*no_such_model"):
        PreferenceModel.from_pretrained(missing, local_files_only=True)


def test_offline_hub_id_fails_fast_with_instructions():
    with pytest.raises(MissingArtifactError, match=r"tokenizer.*some-org/absent-tokenizer.*local folder"):
        load_tokenizer("some-org/absent-tokenizer", local_files_only=True)


def test_dataset_from_json_file_with_columns_and_template(tmp_path: Path):
    rows = [{"post": f"post number {i}", "summary": f" summary {i}"} for i in range(5)]
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    source = DatasetPromptSource.from_name(
        path, prompt_column="post", reference_column="summary", template="{}\nTL;DR:"
    )
    assert len(source) == 5
    prompt = source.get_many([3])[0]
    assert prompt.text == "post number 3\nTL;DR:" and prompt.reference == " summary 3" and prompt.index == 3


def test_dataset_from_save_to_disk_folder_and_split(tmp_path: Path):
    dataset_dict = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"prompt": ["a", "b"]}), "test": datasets.Dataset.from_dict({"prompt": ["c"]})}
    )
    dataset_dict.save_to_disk(str(tmp_path / "dd"))
    source = DatasetPromptSource.from_name(tmp_path / "dd", split="test")
    assert [p.text for p in source.get_many([0])] == ["c"]


def test_dataset_missing_column_names_the_columns(tmp_path: Path):
    with pytest.raises(ValueError, match=r"no column 'text'.*\['prompt'\]"):
        DatasetPromptSource(datasets.Dataset.from_dict({"prompt": ["a"]}), prompt_column="text")


def test_dataset_offline_hub_id_fails_fast():
    with pytest.raises(MissingArtifactError, match="dataset.*some-org/absent-dataset"):
        DatasetPromptSource.from_name("some-org/absent-dataset", local_files_only=True)


def test_loading_prints_no_progress_bars_and_restores_the_setting(toy_dir, capfd):
    from transformers.utils import logging as hf_logging

    from rlhf_gym.lm.loading import load_causal_lm

    assert hf_logging.is_progress_bar_enabled()
    load_causal_lm(str(toy_dir / "policy"))
    PreferenceModel.from_pretrained(toy_dir / "preference_model")
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is back


def fake_hub_cache(cache: Path, repo_id: str, revisions: dict[str, Path]) -> None:
    """A Hugging Face cache holding ``repo_id`` at each named revision (ref -> folder copied in)."""
    import shutil

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    for i, (ref, folder) in enumerate(revisions.items()):
        commit = f"{i + 1:040d}"
        shutil.copytree(folder, repo / "snapshots" / commit)
        (repo / "refs" / ref).write_text(commit)


def test_revision_selects_the_hub_snapshot(toy_dir: Path, toy_tokenizer, tmp_path: Path):
    """``revision`` reaches transformers: the policy and the reward model load the tagged
    weights (and the reward model its normalisation)."""
    from rlhf_gym.lm.policy import CausalLMPolicy
    from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm, tiny_sequence_classifier
    from rlhf_gym.rewards.loading import load_reward_model

    size = TinyGPT2Size(n_layer=1, n_embd=32, n_head=2, n_positions=64)
    for seed in (1, 2):
        CausalLMPolicy(tiny_causal_lm(toy_tokenizer, size, seed=seed)).save_pretrained(tmp_path / f"lm{seed}")
        normalization = RewardNormalization(mean=float(seed), std=2.0)
        reward = PreferenceModel(tiny_sequence_classifier(toy_tokenizer, size, seed=seed), toy_tokenizer, normalization=normalization)
        reward.save_pretrained(tmp_path / f"rm{seed}")
    cache = tmp_path / "cache"
    fake_hub_cache(cache, "someone/lm", {"main": tmp_path / "lm1", "v2": tmp_path / "lm2"})
    fake_hub_cache(cache, "someone/rm", {"main": tmp_path / "rm1", "v2": tmp_path / "rm2"})
    hub = {"local_files_only": True, "cache_dir": str(cache)}

    expected = CausalLMPolicy.from_pretrained(tmp_path / "lm2").model.state_dict()
    policy = CausalLMPolicy.from_pretrained("someone/lm", temperature=0.5, revision="v2", **hub)
    torch.testing.assert_close(policy.model.state_dict(), expected)
    assert not torch.equal(CausalLMPolicy.from_pretrained("someone/lm", **hub).model.transformer.wte.weight,
                           expected["transformer.wte.weight"])

    reward = load_reward_model("someone/rm", revision="v2", **hub)
    assert reward.normalization == RewardNormalization(mean=2.0, std=2.0)  # fetched beside the weights
    prompts, responses = ["POST: I saw 3 owls.\nTL;DR:"], [" 3 owls"]
    expected_scores = PreferenceModel.from_pretrained(tmp_path / "rm2").score(prompts, responses)
    torch.testing.assert_close(reward.score(prompts, responses), expected_scores)
    assert not torch.allclose(load_reward_model("someone/rm", **hub).score(prompts, responses), expected_scores)


def test_missing_artifact_error_is_one_line(tmp_path: Path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(MissingArtifactError) as error:
        PreferenceModel.from_pretrained(tmp_path / "broken", local_files_only=True)
    assert "\n" not in str(error.value) and str(tmp_path / "broken") in str(error.value)

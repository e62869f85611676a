"""`TaskAssets`, one world's shipped assets folder: lazy loading, the rebuild hint of a
missing asset, the preference model shared per device as a frozen read-only view (and a
trainable copy of one's own on request), and the hashes a leaderboard protocol pins.

Parametrised over every world of `rlhf_gym.SUITE` (the shipped assets) where it matters,
and on hand-made folders where the bytes must be controlled.
"""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from rlhf_gym.lm.loading import MissingArtifactError
from rlhf_gym.worlds import Task, TaskAssets
from rlhf_gym.worlds.assets import HASHED_PARTS, folder_hash

PROMPT_COUNT = 4


def _members(model):  # a PreferenceModel or a PreferenceEnsemble
    return getattr(model, "members", None) or [model]


def _texts(task: Task) -> tuple[list[str], list[str]]:
    """A few of the world's own (prompt, response) pairs to score."""
    samples = task.world.samples("valid", PROMPT_COUNT)
    return [s.prompt for s in samples], [s.reference or s.sft_target for s in samples]


# Missing assets ---------------------------------------------------------------------------
def test_construction_touches_no_file(tmp_path: Path) -> None:
    assets = TaskAssets(tmp_path / "not-built-yet", "mytask")
    assert assets.tokenizer_dir == tmp_path / "not-built-yet" / "tokenizer"
    assert assets.policy_dir.name == "sft_policy" and assets.preference_model_dir.name == "preference_model"
    assert not (tmp_path / "not-built-yet").exists()


@pytest.mark.parametrize("loader", ["tokenizer", "policy_path", "preference_model", "card", "hashes"])
def test_a_missing_asset_names_the_command_that_rebuilds_it(task: Task, tmp_path: Path, loader: str) -> None:
    assets = TaskAssets(tmp_path / "missing", task.name)
    with pytest.raises(MissingArtifactError, match=re.escape(f"`rlhf-gym build-assets {task.name}`")) as error:
        getattr(assets, loader)()
    assert str(tmp_path / "missing") in str(error.value)
    # A task made from the world with that folder says the same.
    moved = Task.from_world(task.world, tmp_path / "missing")
    with pytest.raises(MissingArtifactError, match=f"build-assets {task.name}"):
        moved.policy_path()


def test_require_returns_a_path_that_exists(tmp_path: Path) -> None:
    assets = TaskAssets(tmp_path, "mytask")
    assert assets.require(tmp_path) == tmp_path


# The shipped assets -----------------------------------------------------------------------
def test_tokenizer_is_one_shared_object_and_card_is_the_json(task: Task) -> None:
    import json

    assert task.tokenizer() is task.tokenizer() is task.assets.tokenizer()
    assert task.assets.card() == json.loads((task.assets_dir / "card.json").read_text())
    assert task.policy_path() == task.assets.policy_dir


def test_preference_model_view_is_shared_per_device_and_frozen(task: Task) -> None:
    view = task.preference_model(torch.device("cpu"))
    assert view is task.assets.preference_model("cpu") is task.assets.preference_model(torch.device("cpu"))
    for member in _members(view):
        assert not member.model.training
        assert not any(p.requires_grad for p in member.model.parameters())
    # Every env made on that device scores with that one object.
    env = gym.make(task.env_id)
    assert env.unwrapped.vector_env.preference_model is view
    env.close()
    # Training the view fails loudly instead of changing every env's reward.
    prompts, responses = _texts(task)
    encoded = _members(view)[0].encode(prompts, responses)
    scores = _members(view)[0].forward_encoded(encoded["input_ids"], encoded["attention_mask"])
    assert not scores.requires_grad
    with pytest.raises(RuntimeError):
        scores.sum().backward()
    # Another TaskAssets of the same folder has its own view, with the same scores.
    other = TaskAssets(task.assets_dir, task.name).preference_model("cpu")
    assert other is not view
    assert torch.equal(other.raw_scores(prompts, responses), view.raw_scores(prompts, responses))


def test_trainable_copy_is_independent_of_the_shared_view(task: Task) -> None:
    view = task.preference_model(torch.device("cpu"))
    prompts, responses = _texts(task)
    before = view.raw_scores(prompts, responses).clone()
    copy = task.assets.preference_model("cpu", trainable=True)
    assert copy is not view and copy is not task.assets.preference_model("cpu", trainable=True)
    assert torch.equal(copy.raw_scores(prompts, responses), before)  # the same weights, to start with
    members = _members(copy)
    assert all(p.requires_grad for m in members for p in m.model.parameters())
    # A few steps that push the copy's scores of these responses up.
    parameters = [p for m in members for p in m.model.parameters()]
    optimizer = torch.optim.SGD(parameters, lr=0.1)
    for m in members:
        m.model.train()
    encoded = members[0].encode(prompts, responses)
    for _ in range(3):
        optimizer.zero_grad()
        loss = -members[0].forward_encoded(encoded["input_ids"], encoded["attention_mask"]).mean()
        loss.backward()
        optimizer.step()
    for m in members:
        m.model.eval()
    trained = copy.raw_scores(prompts, responses)
    assert (trained - before).abs().max() > 1e-3  # the copy learned
    assert torch.equal(view.raw_scores(prompts, responses), before)  # the shared view did not change
    assert not any(p.requires_grad for m in _members(view) for p in m.model.parameters())


def test_shipped_hashes_are_those_of_each_part(task: Task) -> None:
    hashes = task.assets.hashes()
    assert tuple(hashes) == HASHED_PARTS
    for part, digest in hashes.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert digest == folder_hash(task.assets_dir / part)
    assert len(set(hashes.values())) == len(HASHED_PARTS)
    assert task.assets.hashes() == hashes


def test_shipped_models_are_safetensors_only(task: Task) -> None:
    members = sorted(task.assets.preference_model_dir.glob("member_*")) or [task.assets.preference_model_dir]
    assert len(members) == task.assets.card()["preference_model"]["members"]
    for folder in (task.assets.policy_dir, *members):
        assert (folder / "model.safetensors").is_file()
    for folder in (task.assets.policy_dir, task.assets.preference_model_dir):
        assert not [p for pattern in ("*.bin", "*.pt", "*.pkl") for p in folder.rglob(pattern)]


def test_shipped_generation_config_samples_at_the_protocol_temperature(task: Task) -> None:
    """``generate()`` with the SFT policy's saved defaults samples as the benchmark does."""
    from transformers import GenerationConfig

    config = GenerationConfig.from_pretrained(task.policy_path())
    assert config.do_sample and config.temperature == task.temperature
    assert config.top_k == 0 and config.top_p == 1.0  # pure sampling, as the env's rollouts
    assert config.max_new_tokens == task.max_new_tokens


# Hashes on a hand-made folder -------------------------------------------------------------
def _fake_assets(root: Path, order: list[str]) -> TaskAssets:
    files = {"tokenizer/tokenizer.json": b"{}", "sft_policy/model.safetensors": b"policy",
             "sft_policy/config.json": b"{}", "preference_model/model.safetensors": b"reward"}
    for name in order:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(files[name])
    return TaskAssets(root, "fake")


def test_hashes_cover_names_and_bytes_not_creation_order(tmp_path: Path) -> None:
    names = ["tokenizer/tokenizer.json", "sft_policy/model.safetensors", "sft_policy/config.json",
             "preference_model/model.safetensors"]
    first = _fake_assets(tmp_path / "a", names)
    hashes = first.hashes()
    assert _fake_assets(tmp_path / "b", names[::-1]).hashes() == hashes
    (tmp_path / "a/sft_policy/model.safetensors").write_bytes(b"policY")
    changed = first.hashes()
    assert changed["sft_policy"] != hashes["sft_policy"]
    assert {k: v for k, v in changed.items() if k != "sft_policy"} == {k: v for k, v in hashes.items() if k != "sft_policy"}
    (tmp_path / "b/preference_model/model.safetensors").rename(tmp_path / "b/preference_model/weights.safetensors")
    assert _fake_assets(tmp_path / "c", names).hashes() == hashes
    assert TaskAssets(tmp_path / "b", "fake").hashes()["preference_model"] != hashes["preference_model"]
    (tmp_path / "b/card.json").write_text("{}")  # the card is not a hashed part
    assert TaskAssets(tmp_path / "b", "fake").hashes()["tokenizer"] == hashes["tokenizer"]

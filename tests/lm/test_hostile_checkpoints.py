"""Strangers' checkpoints load safely or are refused in one line, before any of their code runs.

Each hostile folder is built here: pickled weights whose unpickling writes a marker file,
an ``auto_map`` whose modeling file writes a marker when imported, an ensemble member
outside its folder. Every test checks that the marker was not written and that the error
is one line naming the file. The safe paths (the shipped assets, a safetensors folder, an
fp16 checkpoint) still load, in float32.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import pytest
import torch
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM, GPT2Config

import rlhf_gym
from rlhf_gym.lm.loading import (
    MissingArtifactError,
    UnsafeCheckpointError,
    check_checkpoint,
    load_causal_lm,
    load_sequence_classifier,
    load_tokenizer,
)
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_causal_lm
from rlhf_gym.rewards.loading import load_reward_model
from rlhf_gym.rewards.preference_ensemble import ENSEMBLE_FILE, PreferenceEnsemble
from rlhf_gym.rewards.preference_model import PreferenceModel

TINY = TinyGPT2Size(n_layer=1, n_embd=32, n_head=2, n_positions=64)


class WritesMarker:
    """Unpickling this writes ``pwned`` to ``marker`` (``Path.write_text`` as the reducer: no os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., int], tuple[Path, str]]:
        return Path.write_text, (self.marker, "pwned")


def hostile_pickle(marker: Path) -> bytes:
    return pickle.dumps({"transformer.wte.weight": WritesMarker(marker)}, protocol=4)


def pickle_only_folder(folder: Path, marker: Path, weights_name: str = "pytorch_model.bin") -> Path:
    """A GPT-2 folder whose only weights are a hostile pickle."""
    GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=300).save_pretrained(folder)
    (folder / weights_name).write_bytes(hostile_pickle(marker))
    return folder


def remote_code_folder(folder: Path, marker: Path, config_name: str = "config.json") -> Path:
    """A tiny safetensors GPT-2 folder whose ``config_name`` has an ``auto_map`` into a
    modeling file that writes ``marker`` when imported."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modeling_evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('pwned')\n")
    config_file = folder / config_name
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    key = "AutoTokenizer" if config_name == "tokenizer_config.json" else "AutoModelForCausalLM"
    config["auto_map"] = {key: "modeling_evil.EvilModel"}
    config_file.write_text(json.dumps(config))
    return folder


def assert_one_line_naming(error: pytest.ExceptionInfo[BaseException], *names: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for name in names:
        assert name in message, (name, message)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker.txt"


@pytest.fixture
def safe_policy(toy_dir: Path, tmp_path: Path) -> Path:
    """A copy of the toy safetensors policy folder (tokenizer files included) to tamper with."""
    folder = tmp_path / "policy"
    CausalLMPolicy.from_pretrained(toy_dir / "policy").save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((toy_dir / "policy" / name).read_bytes())
    return folder


def test_the_hostile_pickle_is_real(marker: Path):
    """The payload the tests refuse does write the marker when unpickled."""
    pickle.loads(hostile_pickle(marker))
    assert marker.read_text() == "pwned"


# Pickled weights ----------------------------------------------------------------------
LOADERS = {
    "load_causal_lm": lambda path: load_causal_lm(str(path)),
    "load_sequence_classifier": lambda path: load_sequence_classifier(str(path)),
    "CausalLMPolicy.from_pretrained": lambda path: CausalLMPolicy.from_pretrained(path),
    "load_reward_model": lambda path: load_reward_model(path),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("weights_name", ["pytorch_model.bin", "model.pt", "model.ckpt", "pytorch_model-00001-of-00002.bin"])
def test_pickle_only_folder_is_refused_before_unpickling(tmp_path: Path, marker: Path, loader: str, weights_name: str):
    folder = pickle_only_folder(tmp_path / "model", marker, weights_name)
    with pytest.raises(UnsafeCheckpointError) as error:
        LOADERS[loader](folder)
    assert not marker.exists()
    assert_one_line_naming(error, str(folder / weights_name), "pickled", "safe_serialization=True")


def test_pickle_file_path_is_refused(tmp_path: Path, marker: Path):
    folder = pickle_only_folder(tmp_path / "model", marker)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_causal_lm(str(folder / "pytorch_model.bin"))
    assert not marker.exists()
    assert_one_line_naming(error, str(folder / "pytorch_model.bin"))


def test_pickles_beside_safetensors_are_ignored(safe_policy: Path, marker: Path):
    """A trainer's folder often keeps ``training_args.bin`` beside the safetensors: the
    safetensors load, the pickle is never read."""
    (safe_policy / "training_args.bin").write_bytes(hostile_pickle(marker))
    (safe_policy / "pytorch_model.bin").write_bytes(hostile_pickle(marker))
    policy = CausalLMPolicy.from_pretrained(safe_policy)
    assert not marker.exists() and policy.model.dtype == torch.float32


def test_config_naming_pickled_weights_is_refused(safe_policy: Path, marker: Path):
    """``transformers_weights`` in config.json would make transformers read that file even
    with ``use_safetensors=True``."""
    (safe_policy / "adapter_model.bin").write_bytes(hostile_pickle(marker))
    config = json.loads((safe_policy / "config.json").read_text())
    (safe_policy / "config.json").write_text(json.dumps({**config, "transformers_weights": "adapter_model.bin"}))
    with pytest.raises(UnsafeCheckpointError) as error:
        load_causal_lm(str(safe_policy))
    assert not marker.exists()
    assert_one_line_naming(error, str(safe_policy / "config.json"), "adapter_model.bin")


def cached_hub_repo(cache: Path, repo_id: str, marker: Path) -> None:
    """A Hugging Face cache holding ``repo_id`` at main with pickled weights only."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    pickle_only_folder(repo / "snapshots" / commit, marker)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


@pytest.mark.parametrize("conversion", ["disabled", "fails offline"])
def test_hub_repo_with_pickles_only_is_refused(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, conversion: str):
    """A hub id cannot be inspected before loading: ``use_safetensors=True`` keeps transformers
    off the pickle, and its error (explicit, or generic when its safetensors conversion
    needs the network) becomes the same one line."""
    if conversion == "disabled":
        monkeypatch.setenv("DISABLE_SAFETENSORS_CONVERSION", "1")
    else:
        def offline(*args: object, **kwargs: object) -> None:
            raise RuntimeError("no network")

        monkeypatch.setattr(transformers.modeling_utils, "auto_conversion", offline)
    cached_hub_repo(tmp_path / "cache", "someone/pickled-lm", marker)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_causal_lm("someone/pickled-lm", local_files_only=True, cache_dir=str(tmp_path / "cache"))
    assert not marker.exists()
    assert_one_line_naming(error, "someone/pickled-lm", "pytorch_model.bin", "no model.safetensors")


def test_use_safetensors_cannot_be_turned_off(safe_policy: Path):
    with pytest.raises(ValueError, match="use_safetensors must stay True.*False"):
        load_causal_lm(str(safe_policy), use_safetensors=False)


# Remote code --------------------------------------------------------------------------
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_auto_map_is_refused_before_any_import(safe_policy: Path, marker: Path, loader: str):
    remote_code_folder(safe_policy, marker)
    with pytest.raises(UnsafeCheckpointError) as error:
        LOADERS[loader](safe_policy)
    assert not marker.exists()
    assert_one_line_naming(error, str(safe_policy / "config.json"), "remote code", "trust_remote_code=True", "leaderboard")


def test_tokenizer_auto_map_is_refused(safe_policy: Path, marker: Path):
    remote_code_folder(safe_policy, marker, "tokenizer_config.json")
    with pytest.raises(UnsafeCheckpointError) as error:
        load_tokenizer(str(safe_policy))
    assert not marker.exists()
    assert_one_line_naming(error, str(safe_policy / "tokenizer_config.json"), "AutoTokenizer")


def test_gym_make_refuses_a_remote_code_reward_model(toy_dir: Path, tmp_path: Path, marker: Path):
    folder = tmp_path / "rm"
    PreferenceModel.from_pretrained(toy_dir / "preference_model").save_pretrained(folder)
    remote_code_folder(folder, marker)
    with pytest.raises(UnsafeCheckpointError) as error:
        gym.make("RLHF-Summarize-v0", tokenizer=str(toy_dir / "tokenizer"), reward_model=str(folder), local_files_only=True)
    assert not marker.exists()
    assert_one_line_naming(error, str(folder / "config.json"))


def test_trust_remote_code_is_the_opt_in(safe_policy: Path, marker: Path):
    remote_code_folder(safe_policy, marker)
    check_checkpoint(safe_policy, weights=True, trust_remote_code=True)  # no refusal
    with pytest.raises(UnsafeCheckpointError):
        check_checkpoint(safe_policy, weights=True)


def test_hub_remote_code_error_is_translated(tmp_path: Path):
    """transformers' own multi-line refusal (a hub repo with custom code) becomes ours."""
    commit = "0" * 40
    snapshot = tmp_path / "cache" / "models--someone--custom" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    auto_map = {"AutoConfig": "c.C", "AutoModelForCausalLM": "m.M"}
    (snapshot / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto_map}))
    (tmp_path / "cache" / "models--someone--custom" / "refs").mkdir()
    (tmp_path / "cache" / "models--someone--custom" / "refs" / "main").write_text(commit)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_causal_lm("someone/custom", local_files_only=True, cache_dir=str(tmp_path / "cache"))
    assert_one_line_naming(error, "someone/custom", "remote code")


# Ensembles ------------------------------------------------------------------------------
@pytest.fixture
def saved_ensemble(toy_dir: Path, tmp_path: Path) -> Path:
    member = PreferenceModel.from_pretrained(toy_dir / "preference_model")
    PreferenceEnsemble([member, member]).save_pretrained(tmp_path / "ensemble")
    return tmp_path / "ensemble"


def outside_member(kind: str, ensemble: Path, marker: Path) -> str:
    """An ``ensemble.json`` entry reaching a pickle-only folder outside the ensemble."""
    outside = pickle_only_folder(ensemble.parent / "outside", marker)
    if kind == "dot-dot":
        return "../outside"
    if kind == "absolute":
        return str(outside)
    (ensemble / "member_1").rename(ensemble.parent / "moved")
    (ensemble / "member_1").symlink_to(outside, target_is_directory=True)
    return "member_1"


@pytest.mark.parametrize("kind", ["dot-dot", "absolute", "symlink"])
def test_ensemble_member_outside_the_folder_is_refused(saved_ensemble: Path, marker: Path, kind: str):
    name = outside_member(kind, saved_ensemble, marker)
    (saved_ensemble / ENSEMBLE_FILE).write_text(json.dumps({"members": ["member_0", name]}))
    with pytest.raises(UnsafeCheckpointError) as error:
        load_reward_model(saved_ensemble)
    assert not marker.exists()
    assert_one_line_naming(error, repr(name), str(saved_ensemble / ENSEMBLE_FILE), "outside the ensemble folder")


def test_ensemble_member_dot_dot_inside_the_folder_still_loads(saved_ensemble: Path):
    (saved_ensemble / ENSEMBLE_FILE).write_text(json.dumps({"members": ["member_0", "member_0/../member_1"]}))
    assert isinstance(load_reward_model(saved_ensemble), PreferenceEnsemble)


def test_ensemble_member_that_is_the_folder_itself_is_refused(saved_ensemble: Path):
    (saved_ensemble / ENSEMBLE_FILE).write_text(json.dumps({"members": ["member_0", "."]}))
    with pytest.raises(ValueError, match="the ensemble folder itself"):
        load_reward_model(saved_ensemble)


def test_missing_ensemble_member_is_still_missing(saved_ensemble: Path):
    (saved_ensemble / ENSEMBLE_FILE).write_text(json.dumps({"members": ["member_0", "member_7"]}))
    with pytest.raises(MissingArtifactError, match="member_7"):
        load_reward_model(saved_ensemble)


# What still loads -----------------------------------------------------------------------
def test_shipped_assets_load_in_float32():
    task = rlhf_gym.get_task("RLHF-Summarize-v0")
    assert task.sft_policy().model.dtype == torch.float32
    assert task.preference_model(torch.device("cpu")).model.dtype == torch.float32


def test_fp16_checkpoint_loads_as_float32_with_the_rounded_weights_logits(toy_tokenizer, tmp_path: Path):
    policy = CausalLMPolicy(tiny_causal_lm(toy_tokenizer, TINY, seed=3))
    fp32_bytes = sum(p.numel() * 4 for p in policy.model.parameters())
    policy.save_pretrained(tmp_path / "fp16", dtype=torch.float16)

    assert policy.model.dtype == torch.float32  # the policy itself is not converted
    assert sorted(p.name for p in (tmp_path / "fp16").iterdir()) == ["config.json", "generation_config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["fp16"]  # no staging folder left behind
    with safe_open(tmp_path / "fp16" / "model.safetensors", "pt") as weights:
        assert {weights.get_tensor(k).dtype for k in weights.keys()} == {torch.float16}
    assert (tmp_path / "fp16" / "model.safetensors").stat().st_size < 0.6 * fp32_bytes

    loaded = CausalLMPolicy.from_pretrained(tmp_path / "fp16", temperature=1.0)
    assert loaded.model.dtype == torch.float32
    rounded = tiny_causal_lm(toy_tokenizer, TINY, seed=3)
    rounded.load_state_dict({k: v.half().float() for k, v in policy.model.state_dict().items()})
    ids = toy_tokenizer(["POST: I saw 3 owls.\nTL;DR: 3 owls"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = loaded.model(ids).logits
        torch.testing.assert_close(logits, rounded(ids).logits, rtol=0, atol=1e-6)
        assert logits.dtype == torch.float32
        assert not torch.equal(logits, policy.model(ids).logits)  # the rounding is real, and small:
        torch.testing.assert_close(logits, policy.model(ids).logits, rtol=0, atol=1e-2)

    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "fp16")  # plain transformers loads it too
    torch.testing.assert_close(plain.float().state_dict(), loaded.model.state_dict())


def test_save_pretrained_replaces_the_folder(toy_tokenizer, tmp_path: Path):
    first = CausalLMPolicy(tiny_causal_lm(toy_tokenizer, TINY, seed=1))
    second = CausalLMPolicy(tiny_causal_lm(toy_tokenizer, TINY, seed=2))
    first.save_pretrained(tmp_path / "policy")
    (tmp_path / "policy" / "stale.txt").write_text("from the old folder")
    second.save_pretrained(tmp_path / "policy")
    assert not (tmp_path / "policy" / "stale.txt").exists()
    loaded = CausalLMPolicy.from_pretrained(tmp_path / "policy")
    torch.testing.assert_close(loaded.model.state_dict(), second.model.state_dict())


def test_explicit_dtype_is_honoured(toy_dir: Path):
    assert load_causal_lm(str(toy_dir / "policy"), dtype=torch.bfloat16).dtype == torch.bfloat16

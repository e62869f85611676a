"""`gym.make` / `gym.make_vec` by id, with components swapped by path, as a user would."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import rlhf_gym
from rlhf_gym.env.single_env import TokenEnv
from rlhf_gym.env.vector_env import TokenVectorEnv
from rlhf_gym.lm.loading import MissingArtifactError


@pytest.fixture(scope="module")
def local_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "posts.jsonl"
    rows = [{"body": f"POST: I saw {i} owls in the yard.", "tldr": f" {i} owls"} for i in range(12)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_suite_is_registered_with_both_entry_points():
    """Every world folder under envs/ is found by discovery and registered with the one
    generic assembly, told its task."""
    import importlib
    import pkgutil

    import rlhf_gym.envs

    packages = [m.name for m in pkgutil.iter_modules(rlhf_gym.envs.__path__) if m.ispkg]
    # A world folder not registered yet (no assets) must say why, in NOT_REGISTERED.
    unregistered = [n for n in packages if getattr(importlib.import_module(f"rlhf_gym.envs.{n}"), "NOT_REGISTERED", None)]
    worlds = sorted(n for n in packages if n not in unregistered)
    assert sorted(e.module.rsplit(".", 1)[1] for e in rlhf_gym.SUITE) == worlds
    assert "RLHF-Summarize-v0" in [e.env_id for e in rlhf_gym.SUITE]
    for env in rlhf_gym.SUITE:
        spec = gym.spec(env.env_id)
        assert spec.entry_point == "rlhf_gym.registration:make_env"
        assert spec.vector_entry_point == "rlhf_gym.registration:make_vector_env"
        assert spec.kwargs == {"task": env.env_id}
        assert rlhf_gym.get_task(env.task_name).env_id == env.env_id


def test_discovery_finds_a_world_by_its_suite_env(tmp_path, monkeypatch):
    """A folder that declares SUITE_ENV is a world; one that does not is skipped; two worlds
    with one env id are refused."""
    from rlhf_gym.worlds.suite import discover

    root = tmp_path / "probe_catalogue"
    (root / "alpha").mkdir(parents=True)
    (root / "helpers").mkdir()
    (root / "__init__.py").write_text("")
    (root / "helpers" / "__init__.py").write_text("")
    (root / "alpha" / "__init__.py").write_text(
        "from rlhf_gym.worlds import SuiteEnv\nSUITE_ENV = SuiteEnv('Alpha-v0', 'alpha', __name__, 'a probe')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (found,) = discover("probe_catalogue", [str(root)])
    assert (found.env_id, found.module) == ("Alpha-v0", "probe_catalogue.alpha")
    (root / "beta").mkdir()
    (root / "beta" / "__init__.py").write_text(
        "from rlhf_gym.worlds import SuiteEnv\nSUITE_ENV = SuiteEnv('Alpha-v0', 'beta', __name__, 'a clash')\n"
    )
    with pytest.raises(RuntimeError, match="same env_id.*Alpha-v0"):
        discover("probe_catalogue", [str(root)])


def test_get_task_finds_a_task_by_env_id_or_name():
    from rlhf_gym.envs.summarize import TASK

    assert rlhf_gym.get_task("RLHF-Summarize-v0") is TASK and rlhf_gym.get_task("summarize") is TASK
    assert TASK.policy_path().is_dir() and TASK.assets_dir.is_dir() and TASK.world is not None
    with pytest.raises(KeyError, match="unknown env or task 'Nope-v0'.*RLHF-Summarize-v0"):
        rlhf_gym.get_task("Nope-v0")


def test_max_new_tokens_zero_is_an_error_not_the_default():
    """``max_new_tokens=0`` once silently became the task's 64."""
    with pytest.raises(ValueError, match="max_new_tokens must be a positive integer, got 0"):
        gym.make_vec("RLHF-Summarize-v0", num_envs=1, max_new_tokens=0)
    with pytest.raises(ValueError, match="max_prompt_tokens must be a positive integer, got 0"):
        gym.make("RLHF-Summarize-v0", max_prompt_tokens=0)


def test_make_with_components_by_path(toy_dir: Path, local_dataset: Path):
    env = gym.make(
        "RLHF-Summarize-v0",
        dataset=str(local_dataset),
        prompt_column="body",
        reference_column="tldr",
        tokenizer=str(toy_dir / "tokenizer"),
        reward_model=str(toy_dir / "preference_model"),
        max_prompt_tokens=24,
        max_new_tokens=3,
        local_files_only=True,
    )
    core = env.unwrapped
    assert isinstance(core, TokenEnv)
    assert core.vector_env.gold_judge is None  # external data has no latent records
    obs, _ = env.reset(seed=0)
    assert obs["input_ids"].shape == (27,)
    prompt = core.vector_env.prompts[0]
    assert prompt.text.endswith("\nTL;DR:") and prompt.reference.endswith("owls")
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(5)
    assert truncated and math.isnan(info["gold"]) and isinstance(info["proxy"], float)  # no judge: gold is NaN
    assert info["preference"] == info["proxy"] and not env.unwrapped.has_gold_judge


def test_make_vec_returns_the_batched_env_with_kwargs(toy_dir: Path, local_dataset: Path):
    venv = gym.make_vec(
        "RLHF-Summarize-v0",
        num_envs=4,
        dataset=str(local_dataset),
        prompt_column="body",
        tokenizer=str(toy_dir / "tokenizer"),
        reward_model=str(toy_dir / "preference_model"),
        max_prompt_tokens=24,
        max_new_tokens=2,
        autoreset_mode="next_step",
        group_size=2,
        device="cpu",
    )
    assert isinstance(venv, TokenVectorEnv)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=0)
    assert obs["input_ids"].shape == (4, 26) and isinstance(obs["input_ids"], torch.Tensor)


def test_missing_reward_model_path_fails_at_make(toy_dir: Path, tmp_path: Path):
    with pytest.raises(MissingArtifactError, match="preference model.*nowhere"):
        gym.make(
            "RLHF-Summarize-v0",
            tokenizer=str(toy_dir / "tokenizer"),
            reward_model=str(tmp_path / "nowhere"),
            local_files_only=True,
        )


def test_single_env_rejects_vector_only_arguments():
    with pytest.raises(TypeError, match="group_size"):
        gym.make("RLHF-Summarize-v0", group_size=2)


def test_make_vec_takes_any_reward_model_object_and_a_reward_object(toy_dir: Path, local_dataset: Path):
    class Length:  # a RewardModel that is not a preference model
        def score(self, prompts, responses):
            return torch.tensor([float(len(r)) for r in responses])

    class Negative:
        def score(self, prompts, responses):
            return -torch.ones(len(responses))

    common = dict(num_envs=2, dataset=str(local_dataset), prompt_column="body", tokenizer=str(toy_dir / "tokenizer"),
                  max_prompt_tokens=24, max_new_tokens=2, autoreset_mode="disabled")
    venv = gym.make_vec("RLHF-Summarize-v0", reward_model=Length(), reward=Negative(), **common)
    assert isinstance(venv.reward_model, Length) and not venv.has_gold_judge
    venv.reset(seed=0)
    venv.step(torch.tensor([5, 5]))
    _, reward, _, truncated, info = venv.step(torch.tensor([5, 5]))
    assert truncated.all() and torch.equal(reward, torch.tensor([-1.0, -1.0]))
    assert info["proxy"].tolist() == [float(len(t)) for t in info["response_text"]]
    assert np.isnan(info["gold"]).all() and info["_gold"].all()
    with pytest.raises(TypeError, match="reward_model must be a hub id, a path or a RewardModel .* got int"):
        gym.make_vec("RLHF-Summarize-v0", reward_model=3, **common)
    with pytest.raises(ValueError, match="reward='gold' needs a gold judge"):
        gym.make_vec("RLHF-Summarize-v0", reward_model=Length(), reward="gold", **common)

"""A `PreferenceEnsemble` scores as the aggregate of its members, saves, loads, and serves an env."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlhf_gym.agents.value_model import ValueModel
from rlhf_gym.lm.loading import MissingArtifactError
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.pipeline.tiny_models import TinyGPT2Size, tiny_sequence_classifier
from rlhf_gym.rewards.loading import load_reward_model
from rlhf_gym.rewards.preference_ensemble import ENSEMBLE_FILE, PreferenceEnsemble
from rlhf_gym.rewards.preference_model import PreferenceModel, RewardNormalization

TINY = TinyGPT2Size(n_layer=1, n_embd=32, n_head=2, n_positions=256)
PROMPTS = ["POST: a cat sat\nTL;DR:", "POST: two dogs ran far\nTL;DR:", "POST: rain today\nTL;DR:"]
RESPONSES = [" a cat", " dogs ran", " rain"]


def members(tokenizer, seeds=(1, 2, 3)) -> list[PreferenceModel]:
    """Random tiny preference models, each normalised on the test references."""
    out = []
    for seed in seeds:
        member = PreferenceModel(tiny_sequence_classifier(tokenizer, TINY, seed=seed), tokenizer)
        member.fit_normalization(PROMPTS, RESPONSES)
        out.append(member)
    return out


@pytest.mark.parametrize("aggregate", ["mean", "min"])
def test_scores_aggregate_the_members_normalised_rewards(toy_tokenizer, aggregate):
    parts = members(toy_tokenizer)
    ensemble = PreferenceEnsemble(parts, aggregate=aggregate)
    responses = [" dogs", " a cat sat", " two"]
    rewards = torch.stack([m.score(PROMPTS, responses) for m in parts])
    expected = rewards.mean(0) if aggregate == "mean" else rewards.min(0).values
    torch.testing.assert_close(ensemble.raw_scores(PROMPTS, responses), expected)
    assert not torch.allclose(rewards[0], rewards[1])  # the members do disagree

    ensemble.fit_normalization(PROMPTS, RESPONSES)
    scores = ensemble.score(PROMPTS, RESPONSES).double()
    assert abs(scores.mean().item()) < 1e-5 and abs(scores.std().item() - 1.0) < 1e-4


def test_save_and_load_round_trip(toy_tokenizer, tmp_path):
    ensemble = PreferenceEnsemble(members(toy_tokenizer), aggregate="min")
    ensemble.fit_normalization(PROMPTS, RESPONSES)
    ensemble.save_pretrained(tmp_path / "ensemble")
    assert json.loads((tmp_path / "ensemble" / ENSEMBLE_FILE).read_text())["members"] == [
        "member_0", "member_1", "member_2"
    ]
    loaded = load_reward_model(tmp_path / "ensemble", local_files_only=True)  # recognised as an ensemble
    assert isinstance(loaded, PreferenceEnsemble) and loaded.aggregate == "min"
    assert loaded.normalization == ensemble.normalization
    torch.testing.assert_close(loaded.score(PROMPTS, [" x", " y", " z"]), ensemble.score(PROMPTS, [" x", " y", " z"]))


def test_an_env_rewards_with_the_ensemble(make_toy_env, toy_tokenizer, random_actions):
    ensemble = PreferenceEnsemble(members(toy_tokenizer))
    ensemble.fit_normalization(PROMPTS, RESPONSES)
    env = make_toy_env(num_envs=4, preference_model=ensemble)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(12):
        actions = random_actions(rng, 4, env.vocab_size, env.eos_token_id)
        _, _, terminated, truncated, info = env.step(torch.as_tensor(actions))
        done = (terminated | truncated).cpu().numpy()
        if done.any():
            info = info["final_info"]  # the default SAME_STEP autoreset files episode ends there
            expected = ensemble.score(list(info["prompt_text"][done]), list(info["response_text"][done]))
            np.testing.assert_allclose(info["preference"][done], expected.double().numpy(), atol=1e-5)
            finished += int(done.sum())
    assert finished > 0


def test_the_critic_starts_from_the_first_member(toy_dir, toy_tokenizer):
    parts = members(toy_tokenizer)
    parts[0].normalization = RewardNormalization(mean=1.5, std=0.25)
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy")
    critic = ValueModel.create("preference-model", PreferenceEnsemble(parts), policy, toy_tokenizer)
    encoded = parts[0].encode(PROMPTS, RESPONSES)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    width = ids.shape[1]
    with torch.no_grad():
        values = critic(
            torch.cat([ids, torch.zeros_like(ids[:, :1])], 1), torch.cat([mask, torch.zeros_like(mask[:, :1])], 1),
            prompt_width=width,
        )
    torch.testing.assert_close(values[:, 0], parts[0].score(PROMPTS, RESPONSES), atol=1e-5, rtol=1e-5)


def test_bad_ensembles_are_rejected(toy_tokenizer, tmp_path):
    parts = members(toy_tokenizer, seeds=(1, 2))
    with pytest.raises(ValueError, match="at least 2 members, got 1"):
        PreferenceEnsemble(parts[:1])
    with pytest.raises(ValueError, match="aggregate must be one of .* got 'max'"):
        PreferenceEnsemble(parts, aggregate="max")
    with pytest.raises(ValueError, match="not ensembles"):
        PreferenceEnsemble([PreferenceEnsemble(parts), parts[0]])
    with pytest.raises(NotImplementedError, match="train each member"):
        PreferenceEnsemble(parts).forward_groups(PROMPTS, [(r,) for r in RESPONSES])

    PreferenceEnsemble(parts).save_pretrained(tmp_path / "e")
    (tmp_path / "e" / ENSEMBLE_FILE).write_text(json.dumps({"members": ["member_0", "member_9"]}))
    with pytest.raises(MissingArtifactError, match="member_9"):
        load_reward_model(tmp_path / "e")
    (tmp_path / "e" / ENSEMBLE_FILE).write_text(json.dumps(["member_0"]))
    with pytest.raises(ValueError, match="must hold"):
        load_reward_model(tmp_path / "e")

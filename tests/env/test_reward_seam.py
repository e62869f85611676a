"""The reward seam: any `RewardModel` as the env's learned reward, named scorers, envs without a gold judge."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rlhf_gym.rewards.reward_model as reward_registry
from rlhf_gym.env.rollout import collect_episodes, paired_gold
from rlhf_gym.env.single_env import TokenEnv
from rlhf_gym.lm.policy import CausalLMPolicy
from rlhf_gym.rewards.reward_model import (
    RewardModel,
    make_reward_scorer,
    register_reward_scorer,
    reward_scorer_names,
    takes_token_ids,
)


class LengthReward:
    """A `RewardModel` that is not a preference model: a response's length in characters."""

    def score(self, prompts, responses):
        assert len(prompts) == len(responses)
        return torch.tensor([float(len(r)) for r in responses], dtype=torch.float64)


class ZeroReward:
    """Scores every response exactly 0."""

    def score(self, prompts, responses):
        return torch.zeros(len(responses))


class TokenCountReward:
    """Reads the env's token ids: the number of response tokens (EOS included); never decodes."""

    def __init__(self, tokenizer, reads_env_ids: bool = True) -> None:
        self.tokenizer, self.reads_env_ids, self.id_calls = tokenizer, reads_env_ids, 0

    def score(self, prompts, responses):
        return torch.full((len(responses),), -1.0)  # distinguishable from any token count

    def score_ids(self, input_ids, attention_mask):
        self.id_calls += 1
        self.last_ids = input_ids.clone()
        return attention_mask[:, self.prompt_width :].sum(-1).float()

    def reads_token_ids(self, tokenizer):
        return self.reads_env_ids and tokenizer is self.tokenizer


@pytest.fixture
def isolated_registry(monkeypatch):
    """Scorers registered by a test vanish after it."""
    monkeypatch.setattr(reward_registry, "_REWARD_SCORERS", dict(reward_registry._REWARD_SCORERS))


def _non_eos(env, n: int) -> torch.Tensor:
    token = 0 if env.eos_token_id != 0 else 1
    token = token if token != env.pad_token_id else token + 2
    return torch.full((n,), token, dtype=torch.long)


def _finish_both_ways(env):
    """Step a 2-row DISABLED env until row 0 terminates (step 2) and row 1 is truncated (step T)."""
    env.reset(seed=4)
    tok, eos = int(_non_eos(env, 1)), env.eos_token_id
    rewards, infos = torch.zeros(2), []
    for t in range(env.max_new_tokens):
        action = torch.tensor([eos if t == 1 else tok, tok])
        _, reward, terminated, truncated, info = env.step(action)
        rewards += reward
        if (terminated | truncated).any():
            infos.append(info)
    assert env.finished.all()
    return rewards, infos


def _merged(infos, key):
    values = np.full(2, np.nan, dtype=object)
    for info in infos:
        values[info[f"_{key}"]] = info[key][info[f"_{key}"]]
    return values


def test_any_reward_model_is_the_learned_reward(make_toy_env):
    env = make_toy_env(2, preference_model=None, reward_model=LengthReward(), max_new_tokens=4,
                       missing_eos_penalty=0.5, autoreset_mode="disabled")
    rewards, infos = _finish_both_ways(env)
    texts = _merged(infos, "response_text")
    lengths = np.array([len(t) for t in texts], dtype=np.float64)
    assert lengths[1] > lengths[0] > 0  # the truncated row wrote more
    np.testing.assert_array_equal(_merged(infos, "proxy").astype(np.float64), lengths)
    np.testing.assert_array_equal(_merged(infos, "penalty").astype(np.float64), [0.0, -0.5])
    assert torch.equal(rewards, torch.tensor(lengths + [0.0, -0.5], dtype=torch.float32))
    assert env.reward_model is env.preference_model  # the former name still reads it


def test_the_preference_model_path_is_unchanged(make_toy_env, toy_preference_model):
    """The shipped model still scores text, and the reward is (score + penalty) in float32, bit for bit."""
    assert not takes_token_ids(toy_preference_model, toy_preference_model.tokenizer)
    env = make_toy_env(2, max_new_tokens=4, missing_eos_penalty=0.25, autoreset_mode="disabled")
    rewards, infos = _finish_both_ways(env)
    prompts, responses = _merged(infos, "prompt_text"), _merged(infos, "response_text")
    # Each row alone, as the env scored it (rows finish in different steps).
    score = torch.cat([toy_preference_model.score([prompts[i]], [responses[i]]) for i in range(2)])
    assert torch.equal(rewards, (score + torch.tensor([0.0, -0.25])).float())


def test_a_reward_model_object_as_the_reward_keeps_the_proxy(make_toy_env, toy_preference_model):
    env = make_toy_env(2, reward=LengthReward(), max_new_tokens=4, autoreset_mode="disabled")
    rewards, infos = _finish_both_ways(env)
    lengths = [float(len(t)) for t in _merged(infos, "response_text")]
    assert torch.equal(rewards, torch.tensor(lengths, dtype=torch.float32))
    proxy = toy_preference_model.score(list(_merged(infos, "prompt_text")), list(_merged(infos, "response_text")))
    np.testing.assert_allclose(_merged(infos, "proxy").astype(np.float64), proxy.double().numpy(), atol=1e-6)


def test_a_registered_scorer_is_chosen_by_name(make_toy_env, isolated_registry):
    def proxy_below_gold(env):  # a factory sees the env it serves
        if not env.has_gold_judge:
            raise ValueError("proxy_below_gold needs a gold judge")
        return lambda episodes: episodes.proxy - torch.as_tensor(episodes.gold, dtype=episodes.proxy.dtype)

    register_reward_scorer("proxy_below_gold", proxy_below_gold)
    assert reward_scorer_names() == ("preference", "gold", "proxy_below_gold")
    env = make_toy_env(2, reward="proxy_below_gold", max_new_tokens=4, autoreset_mode="disabled")
    rewards, infos = _finish_both_ways(env)
    expected = _merged(infos, "proxy").astype(np.float64) - _merged(infos, "gold").astype(np.float64)
    np.testing.assert_allclose(rewards.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="proxy_below_gold needs a gold judge"):
        make_toy_env(2, reward="proxy_below_gold", gold_judge=None)
    with pytest.raises(ValueError, match="'proxy_below_gold' is already registered"):
        register_reward_scorer("proxy_below_gold", proxy_below_gold)


def test_unknown_or_malformed_rewards_are_rejected_in_one_line(make_toy_env, isolated_registry):
    register_reward_scorer("length", lambda env: lambda episodes: episodes.proxy)
    with pytest.raises(ValueError) as error:
        make_toy_env(2, reward="human")
    assert str(error.value) == (
        "reward must be one of the registered scorers ('preference', 'gold', 'length') or a RewardModel, got 'human'"
    )
    with pytest.raises(TypeError, match="reward must be a registered scorer name .* got int"):
        make_toy_env(2, reward=3)
    with pytest.raises(TypeError, match="reward_model must be a RewardModel .* got object"):
        make_toy_env(2, preference_model=object())
    with pytest.raises(TypeError, match="not both"):
        make_toy_env(2, reward_model=LengthReward())  # preference_model= is set too
    with pytest.raises(ValueError, match="non-empty string"):
        register_reward_scorer("", lambda env: None)


def test_a_scorer_returning_non_finite_scores_leaves_the_env_unchanged(make_toy_env):
    class NaNReward:
        def score(self, prompts, responses):
            return torch.full((len(responses),), float("nan"))

    env = make_toy_env(2, reward=NaNReward())
    env.reset(seed=0)
    before = env._input_ids.clone()
    with pytest.raises(RuntimeError, match="reward .*NaNReward.* returned non-finite scores .* unchanged"):
        env.step(torch.full((2,), env.eos_token_id))
    assert torch.equal(env._input_ids, before)


def test_token_ids_go_to_a_model_that_reads_the_env_tokenizer(make_toy_env, toy_tokenizer):
    reader = TokenCountReward(toy_tokenizer)
    env = make_toy_env(2, preference_model=reader, max_new_tokens=4, autoreset_mode="disabled")
    reader.prompt_width = env.max_prompt_tokens
    assert takes_token_ids(reader, env.tokenizer)
    rewards, infos = _finish_both_ways(env)
    assert reader.id_calls == 2  # one batch per step in which rows finished
    assert torch.equal(rewards, torch.tensor([2.0, 4.0]))  # EOS counted, as in response_length
    np.testing.assert_array_equal(_merged(infos, "response_length").astype(np.int64), [2, 4])
    assert reader.last_ids[0, env.max_prompt_tokens + 3] != env.pad_token_id  # the last token is in the ids

    other = TokenCountReward(toy_tokenizer, reads_env_ids=False)  # declares it cannot read these ids
    env = make_toy_env(2, preference_model=other, max_new_tokens=4, autoreset_mode="disabled")
    rewards, _ = _finish_both_ways(env)
    assert other.id_calls == 0 and torch.equal(rewards, torch.tensor([-1.0, -1.0]))


@pytest.mark.parametrize("mode", ["same_step", "next_step", "disabled"])
def test_proxy_and_its_preference_alias_hold_the_same_values(make_toy_env, mode):
    env = make_toy_env(3, autoreset_mode=mode)
    env.reset(seed=2)
    _, _, _, _, info = env.step(torch.tensor([env.eos_token_id, env.eos_token_id, int(_non_eos(env, 1))]))
    episode = info["final_info"] if mode == "same_step" else info
    assert episode["_proxy"].tolist() == [True, True, False]
    np.testing.assert_array_equal(episode["_preference"], episode["_proxy"])
    np.testing.assert_array_equal(episode["preference"], episode["proxy"])
    assert episode["preference"] is not episode["proxy"]  # separate arrays: editing one leaves the other


def test_an_env_without_gold_judge_says_so(make_toy_env):
    env = make_toy_env(2, gold_judge=None, autoreset_mode="disabled")
    assert env.has_gold_judge is False and env.metadata["has_gold_judge"] is False
    assert make_toy_env(2).metadata["has_gold_judge"] is True
    env.reset(seed=0)
    *_, info = env.step(torch.tensor([env.eos_token_id, int(_non_eos(env, 1))]))
    assert info["_gold"].tolist() == [True, False] and math.isnan(info["gold"][0])
    with pytest.raises(ValueError, match="reward='gold' needs a gold judge, and this env has none"):
        make_toy_env(2, gold_judge=None, reward="gold")
    single = TokenEnv(make_toy_env(1, gold_judge=None, autoreset_mode="disabled"))
    assert single.has_gold_judge is False and single.metadata["has_gold_judge"] is False
    single.reset(seed=0)
    *_, info = single.step(single.vector_env.eos_token_id)
    assert math.isnan(info["gold"]) and isinstance(info["proxy"], float)


def test_collect_episodes_finds_rows_from_the_flags(make_toy_env, toy_dir, toy_tokenizer, monkeypatch):
    """Zero scores everywhere, no preference alias, no gold judge: every row is still found."""
    policy = CausalLMPolicy.from_pretrained(toy_dir / "policy", temperature=1.0)
    env = make_toy_env(6, preference_model=ZeroReward(), autoreset_mode="disabled", max_new_tokens=6,
                       missing_eos_penalty=1.0)
    score = type(env)._score

    def without_alias(self, *args):  # the env of the next version, once the alias is gone
        rewards, info = score(self, *args)
        del info["preference"], info["_preference"]
        return rewards, info

    monkeypatch.setattr(type(env), "_score", without_alias)
    batch = collect_episodes(env, policy, seed=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(batch.preference, torch.zeros(6))
    expected_penalty = torch.where(batch.terminated, 0.0, -1.0)
    assert torch.equal(batch.penalty, expected_penalty) and torch.equal(batch.scores, expected_penalty)
    gold = env.gold_judge(env.prompts, batch.response_texts)
    assert torch.equal(batch.gold, torch.as_tensor(gold, dtype=torch.float32))  # every row read, none left NaN

    no_judge = make_toy_env(6, preference_model=LengthReward(), gold_judge=None, autoreset_mode="disabled",
                            max_new_tokens=6)
    batch = collect_episodes(no_judge, policy, seed=1, generator=torch.Generator().manual_seed(0))
    assert torch.isnan(batch.gold).all()
    lengths = torch.tensor([float(len(t)) for t in batch.response_texts])
    assert torch.equal(batch.preference, lengths) and torch.equal(batch.scores, lengths)
    with pytest.raises(ValueError, match="no gold judge"):
        paired_gold(no_judge, policy, policy, posts=4, seed=0)


def test_make_reward_scorer_serves_any_context(toy_tokenizer):
    class Context:  # what a factory may read; no env needed
        reward_model, has_gold_judge, tokenizer, device = LengthReward(), False, toy_tokenizer, torch.device("cpu")

    assert isinstance(LengthReward(), RewardModel) and not isinstance("gold", RewardModel)
    scorer = make_reward_scorer("preference", Context())
    proxy = torch.tensor([0.5, -1.0])
    episodes = reward_registry.FinishedEpisodes(["p", "q"], ["a", "bc"], torch.zeros(2, 3), torch.ones(2, 3), proxy, None)
    assert scorer(episodes) is proxy
    assert make_reward_scorer(LengthReward(), Context())(episodes).tolist() == [1.0, 2.0]

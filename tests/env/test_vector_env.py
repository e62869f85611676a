"""The TokenVectorEnv contract: layout, rewards, episode ends, autoreset modes, groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode


def _non_eos(env, n: int) -> torch.Tensor:
    token = 0 if env.eos_token_id != 0 else 1
    token = token if token != env.pad_token_id else token + 2
    return torch.full((n,), token, dtype=torch.long)


def test_observation_layout_prompt_left_padded_then_response(make_toy_env):
    env = make_toy_env(3, max_prompt_tokens=40, max_new_tokens=5)
    obs, info = env.reset(seed=0)
    P = env.max_prompt_tokens
    assert obs["input_ids"].shape == (3, 45) and obs["input_ids"].dtype == torch.int64
    mask = obs["attention_mask"]
    assert mask[:, P:].sum() == 0
    # left padding: once a row's prompt starts it is contiguous up to column P
    for row in mask[:, :P]:
        first = int(row.argmax())
        assert row[first:].all() and not row[:first].any()
    ids = obs["input_ids"]
    prompts = env.prompts
    for r in range(3):
        decoded = env.tokenizer.decode(ids[r, :P][mask[r, :P].bool()].tolist())
        assert decoded == prompts[r].text
        assert info["prompt_index"][r] == prompts[r].index
    action = _non_eos(env, 3)
    obs, *_ = env.step(action)
    assert (obs["input_ids"][:, P] == action).all()
    assert (obs["attention_mask"][:, P] == 1).all() and obs["attention_mask"][:, P + 1 :].sum() == 0


def test_prompts_longer_than_block_keep_their_end(make_toy_env):
    env = make_toy_env(2, max_prompt_tokens=6)
    obs, _ = env.reset(seed=3)
    assert obs["attention_mask"][:, :6].all()
    tail = env.tokenizer.decode(obs["input_ids"][0, :6].tolist())
    assert env.prompts[0].text.endswith(tail) and tail.endswith("TL;DR:")


def test_reward_only_at_episode_end_equals_preference_score(make_toy_env, toy_preference_model):
    env = make_toy_env(2, max_new_tokens=4, autoreset_mode="next_step")
    env.reset(seed=1)
    tokens = _non_eos(env, 2)
    rewards = []
    for t in range(4):
        obs, reward, terminated, truncated, info = env.step(tokens)
        rewards.append(reward)
        if t < 3:
            assert not (terminated | truncated).any() and (reward == 0).all()
    assert truncated.all() and not terminated.any()
    expected = toy_preference_model.score(list(info["prompt_text"]), list(info["response_text"]))
    assert torch.allclose(reward, expected, atol=1e-6)
    assert np.allclose(info["preference"], expected.numpy(), atol=1e-6)
    assert (info["response_length"] == 4).all()
    assert np.all(info["penalty"] == 0.0)
    token_text = env.tokenizer.decode([int(tokens[0])] * 4)
    assert info["response_text"][0] == token_text


def test_eos_terminates_and_is_not_part_of_response_text(make_toy_env):
    env = make_toy_env(2, autoreset_mode="disabled")
    env.reset(seed=2)
    eos = env.eos_token_id
    first = _non_eos(env, 2)
    env.step(first)
    obs, reward, terminated, truncated, info = env.step(torch.tensor([eos, int(first[0])]))
    assert terminated.tolist() == [True, False] and not truncated.any()
    assert info["_response_text"].tolist() == [True, False]
    assert info["response_text"][0] == env.tokenizer.decode([int(first[0])])
    assert info["response_length"][0] == 2  # EOS counts as a generated token
    assert obs["input_ids"][0, env.max_prompt_tokens + 1] == eos
    assert reward[1] == 0 and reward[0] != 0


def test_missing_eos_penalty_is_subtracted_on_truncation_only(make_toy_env, toy_preference_model):
    env = make_toy_env(2, max_new_tokens=2, missing_eos_penalty=1.5, autoreset_mode="disabled")
    env.reset(seed=4)
    tok = _non_eos(env, 2)
    env.step(tok)
    _, reward, terminated, truncated, info = env.step(torch.tensor([env.eos_token_id, int(tok[1])]))
    assert terminated.tolist() == [True, False] and truncated.tolist() == [False, True]
    assert info["penalty"].tolist() == [0.0, -1.5]
    assert torch.allclose(reward, torch.tensor(info["preference"] + info["penalty"], dtype=torch.float32))


def test_gold_judge_scores_reported_in_info(make_toy_env):
    env = make_toy_env(1, max_new_tokens=8, autoreset_mode="disabled")
    env.reset(seed=5)
    prompt = env.prompts[0]
    good = env.tokenizer(prompt.reference, add_special_tokens=False)["input_ids"] + [env.eos_token_id]
    for token in good:
        *_, info = env.step(torch.tensor([token]))
    assert info["response_text"][0] == prompt.reference
    assert info["gold"][0] == 1.0


def test_gold_reward_replaces_the_preference_score(make_toy_env):
    env = make_toy_env(2, max_new_tokens=2, missing_eos_penalty=0.5, autoreset_mode="disabled", reward="gold")
    env.reset(seed=5)
    tok = _non_eos(env, 2)
    env.step(tok)
    _, reward, terminated, truncated, info = env.step(torch.tensor([env.eos_token_id, int(tok[1])]))
    assert terminated.tolist() == [True, False] and truncated.tolist() == [False, True]
    expected = torch.tensor(info["gold"] + info["penalty"], dtype=torch.float32)
    assert torch.equal(reward, expected)
    assert not torch.allclose(reward, torch.tensor(info["preference"] + info["penalty"], dtype=torch.float32))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"reward": "human"}, r"reward must be one of the registered scorers \('preference', 'gold'.*\) or a RewardModel, got 'human'"),
        ({"reward": "gold", "gold_judge": None}, "reward='gold' needs a gold judge"),
    ],
)
def test_bad_reward_source_is_rejected(make_toy_env, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_toy_env(2, **overrides)


def test_same_step_autoreset_returns_final_obs_and_new_prompt(make_toy_env):
    env = make_toy_env(2, autoreset_mode=AutoresetMode.SAME_STEP)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    env.reset(seed=6)
    old_prompts = env.prompts
    obs, reward, terminated, truncated, info = env.step(torch.tensor([env.eos_token_id, int(_non_eos(env, 1))]))
    assert info["_final_obs"].tolist() == [True, False]
    final_ids = info["final_obs"]["input_ids"]
    assert final_ids[0, env.max_prompt_tokens] == env.eos_token_id
    assert obs["attention_mask"][0, env.max_prompt_tokens :].sum() == 0  # row 0 restarted
    assert obs["attention_mask"][1, env.max_prompt_tokens] == 1  # row 1 continues
    assert info["final_info"]["_preference"].tolist() == [True, False]
    assert info["_prompt_index"].tolist() == [True, False]
    assert env.prompts[1] == old_prompts[1]


def test_next_step_autoreset_ignores_action_after_end(make_toy_env):
    env = make_toy_env(2, autoreset_mode="next_step")
    env.reset(seed=7)
    eos = env.eos_token_id
    env.step(torch.tensor([eos, eos]))
    assert env.finished.all()
    obs, reward, terminated, truncated, info = env.step(_non_eos(env, 2))
    assert (reward == 0).all() and not (terminated | truncated).any()
    assert obs["attention_mask"][:, env.max_prompt_tokens :].sum() == 0
    assert info["_prompt_index"].all() and not env.finished.any()


def test_disabled_autoreset_freezes_finished_rows_until_reset_mask(make_toy_env):
    env = make_toy_env(2, autoreset_mode="disabled", max_new_tokens=3)
    env.reset(seed=8)
    eos, tok = env.eos_token_id, int(_non_eos(env, 1))
    env.step(torch.tensor([eos, tok]))
    before = env._input_ids[0].clone()
    obs, reward, terminated, truncated, info = env.step(torch.tensor([tok, tok]))
    # The finished row 0 ignores its action: its context is unchanged, it earns nothing,
    # and it does not end (or get scored) again.
    assert torch.equal(obs["input_ids"][0], before)
    assert reward[0] == 0
    assert not terminated[0]
    assert not truncated[0]
    # Row 1 has 2 of its 3 tokens, so no row ends this step and nothing is scored.
    assert not terminated[1] and not truncated[1]
    assert "_preference" not in info, info.get("_preference")
    _, _, _, truncated, info = env.step(torch.tensor([tok, tok]))
    assert truncated.tolist() == [False, True] and env.finished.all()
    assert info["_preference"].tolist() == [False, True]  # only row 1 is scored
    prompt_1 = env.prompts[1]
    obs, info = env.reset(options={"reset_mask": np.array([True, False])})
    assert info["_prompt_index"].tolist() == [True, False]
    assert obs["attention_mask"][0, env.max_prompt_tokens :].sum() == 0
    assert env.finished.tolist() == [False, True] and env.prompts[1] == prompt_1


def test_group_size_shares_prompts_within_groups(make_toy_env):
    env = make_toy_env(6, group_size=3, autoreset_mode="same_step")
    env.reset(seed=9)
    idx = [p.index for p in env.prompts]
    assert idx[0] == idx[1] == idx[2] and idx[3] == idx[4] == idx[5] and idx[0] != idx[3]
    # Members finishing at different times still get the same j-th prompt.
    eos, tok = env.eos_token_id, int(_non_eos(env, 1))
    env.step(torch.tensor([eos, tok, tok, tok, tok, tok]))
    env.step(torch.tensor([tok, eos, eos, tok, tok, tok]))
    second = [p.index for p in env.prompts]
    assert second[0] == second[1] == second[2] != idx[0]


def test_same_seed_same_prompts_different_seed_differs(make_toy_env):
    a, b, c = make_toy_env(8), make_toy_env(8), make_toy_env(8)
    oa, _ = a.reset(seed=11)
    ob, _ = b.reset(seed=11)
    oc, _ = c.reset(seed=12)
    assert torch.equal(oa["input_ids"], ob["input_ids"])
    assert not torch.equal(oa["input_ids"], oc["input_ids"])
    # seed s for sub-env i equals seed s + i for sub-env 0 (SyncVectorEnv's convention)
    d = make_toy_env(1)
    od, _ = d.reset(seed=13)
    assert torch.equal(od["input_ids"][0], oa["input_ids"][2])


def test_reset_without_seed_continues_the_streams(make_toy_env):
    env = make_toy_env(4)
    first, _ = env.reset(seed=0)
    second, _ = env.reset()
    again, _ = env.reset(seed=0)
    assert torch.equal(first["input_ids"], again["input_ids"])
    assert not torch.equal(first["input_ids"], second["input_ids"])


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))])
def test_tensors_live_on_the_requested_device(make_toy_env, device):
    env = make_toy_env(2, device=device)
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(torch.full((2,), env.eos_token_id, device=device))
    for tensor in (*obs.values(), reward, terminated, truncated):
        assert tensor.device.type == device
    assert reward.dtype == torch.float32 and terminated.dtype == torch.bool


def test_observations_are_copies_not_views_of_the_buffer(make_toy_env):
    env = make_toy_env(2)
    obs, _ = env.reset(seed=0)
    snapshot = obs["input_ids"].clone()
    env.step(_non_eos(env, 2))
    assert torch.equal(obs["input_ids"], snapshot)

"""P1: the constant reward, the scoring clock, the stagger, and a tiny comparison on the shipped env.

Sizes are tiny (N=4, episodes of 6 tokens); no test asserts a time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_gym.bench.env_bookkeeping import (
    POOL_SIZE,
    ConstantReward,
    P1Sizes,
    PromptPool,
    env_bookkeeping,
    make_pair,
    random_actions,
    scoring_clock,
    stagger_actions,
    steps_for,
    sync_comparison,
    sync_cores,
)
from rlhf_gym.rewards.reward_model import RewardModel

ENV = "RLHF-Summarize-v0"
TINY = P1Sizes(num_envs=(4,), shipped_num_envs=(4,), share_num_envs=4, target_seconds=0.01, pairs=2, warmup=1, max_new_tokens=6,
               fresh_num_envs=(4,))


def test_the_constant_reward_is_a_reward_model_of_zeros():
    reward = ConstantReward()
    scores = reward.score(["p"] * 3, ["a", "b", "c"])
    assert isinstance(reward, RewardModel)
    assert scores.tolist() == [0.0, 0.0, 0.0] and scores.dtype == torch.float32


def test_stagger_spreads_the_eos_over_one_episode():
    actions = stagger_actions(0, num_envs=16, horizon=8, vocab_size=100, eos=7)
    assert actions.shape == (8, 16)
    first_eos = [int(np.flatnonzero(actions[:, i] == 7).min()) for i in range(16)]
    assert first_eos == [i // 2 for i in range(16)]  # two sub-envs per step, every step of the episode


def test_both_sides_get_the_same_actions_per_run():
    assert np.array_equal(random_actions(0, 3, 5, 4, 50), random_actions(0, 3, 5, 4, 50))
    assert not np.array_equal(random_actions(0, 3, 5, 4, 50), random_actions(0, -3, 5, 4, 50))  # warm-ups differ


def test_steps_per_run_follow_the_slower_side_within_bounds():
    assert steps_for(6.4, 64, 1.0) == 10
    assert steps_for(1e-6, 64, 1.0) == 16 * 64  # capped
    assert steps_for(600.0, 64, 1.0) == 2  # at least two


def test_the_scoring_clock_patches_each_model_once_and_restores():
    model = ConstantReward()

    class Core:
        def __init__(self) -> None:
            self.device, self.reward_model = torch.device("cpu"), model
            self.gold_judge = lambda prompts, responses: np.zeros(len(responses))

    cores = [Core(), Core()]  # two envs sharing one reward model, as SyncVectorEnv's sub-envs do
    judges = [core.gold_judge for core in cores]
    with pytest.raises(RuntimeError), scoring_clock(cores) as clock:
        model.score(["p"], ["r"])
        cores[1].gold_judge(["p"], ["r"])
        assert clock.calls == 2 and clock.seconds > 0  # one layer of timing, not one per env
        raise RuntimeError("a failing run")
    assert "score" not in vars(model) and [core.gold_judge for core in cores] == judges


@pytest.fixture(scope="module")
def bookkeeping_pair():
    reward = ConstantReward()
    ours, sync = make_pair(ENV, 4, reward_model=reward, gold=False, max_new_tokens=6)
    yield reward, ours, sync
    ours.close()
    sync.close()


def test_the_bookkeeping_pair_shares_the_reward_and_has_no_gold(bookkeeping_pair):
    reward, ours, sync = bookkeeping_pair
    cores = sync_cores(sync)
    assert len(cores) == 4 and ours.num_envs == 4
    assert ours.reward_model is reward and all(core.reward_model is reward for core in cores)
    assert not ours.has_gold_judge and not any(core.has_gold_judge for core in cores)
    assert ours.autoreset_mode == sync.metadata["autoreset_mode"]
    # one pool of already generated prompts (read-only), the same on both sides: no generation is timed
    assert isinstance(ours.prompt_source, PromptPool) and all(core.prompt_source is ours.prompt_source for core in cores)
    first = ours.prompt_source.get_many([0, 5])
    assert [p.index for p in first] == [0, 5] and len(ours.prompt_source) == POOL_SIZE


def test_both_sides_play_the_same_episodes_with_zero_rewards(bookkeeping_pair):
    _, ours, sync = bookkeeping_pair
    actions = np.concatenate([stagger_actions(1, 4, 6, ours.vocab_size, ours.eos_token_id), random_actions(1, 0, 14, 4, ours.vocab_size)])
    ours.reset(seed=1)
    sync.reset(seed=1)
    ended = 0
    for step_actions in actions:
        _, r1, te1, tr1, info1 = ours.step(torch.from_numpy(step_actions))
        _, r2, te2, tr2, info2 = sync.step(step_actions)
        assert np.array_equal(te1.numpy(), te2) and np.array_equal(tr1.numpy(), tr2)
        assert not r1.any() and not r2.any()  # the constant reward really scores zero
        done = (te1 | tr1).numpy()
        ended += int(done.sum())
        if done.any():
            assert (info1["final_info"]["proxy"][done] == 0).all()
            assert np.array_equal(info1["final_info"]["response_text"][done], info2["final_info"]["response_text"][done])
    assert ended >= 4 + 4  # the stagger ends each sub-env once, then truncation at 6 tokens again


def test_a_tiny_comparison_counts_sub_env_steps_and_keeps_the_episode_rate():
    pairing = sync_comparison(ENV, 4, variant="bookkeeping", sizes=TINY)
    row = pairing.to_json()
    c = pairing.comparison
    for samples, steps in ((c.a_samples, pairing.steps[0]), (c.b_samples, pairing.steps[1])):
        assert [s.work for s in samples] == [4.0 * steps] * 2  # N sub-env steps per vector step
        # staggered: each run of either side ends about N / T episodes per step, whatever its length
        assert all(abs(s.extra["episodes"] - 4 * steps / 6) <= 1 for s in samples)
    assert row["ratio"] == pytest.approx(c.ratios[0] / 2 + c.ratios[1] / 2)
    assert row["a_scoring_share"] < 0.5 and row["gold_judge"] is False


def test_same_steps_give_the_same_episodes_on_both_sides():
    sizes = P1Sizes(num_envs=(4,), shipped_num_envs=(), share_num_envs=None, target_seconds=1e9, pairs=2, warmup=0, max_new_tokens=6)
    pairing = sync_comparison(ENV, 4, variant="bookkeeping", sizes=sizes)  # both capped at 16 T steps per run
    c = pairing.comparison
    assert pairing.steps == (96, 96)
    assert [s.extra["episodes"] for s in c.a_samples] == [s.extra["episodes"] for s in c.b_samples]


def test_the_whole_part_at_tiny_sizes_reports_both_variants_and_the_share():
    lines: list[str] = []
    result = env_bookkeeping(quick=True, env_id=ENV, sizes=TINY, log=lines.append)
    assert [row["num_envs"] for row in result["bookkeeping"]] == [4] and result["shipped"][0]["gold_judge"] is True
    assert result["shipped"][0]["a_scoring_share"] > 0  # the preference model and the judge are timed
    assert 0 < result["bookkeeping_share"]["bookkeeping_share"]
    assert len(result["headline"]) == 4 and len(lines) == 4
    fresh = result["fresh-prompts"][0]  # the cache off on both sides: every reset tokenises
    assert fresh["prompt_cache"] is False and fresh["a_prompt_cache_hit_rate"] == fresh["b_prompt_cache_hit_rate"] == 0
    with pytest.raises(ValueError, match="variant must be one of"):
        sync_comparison(ENV, 4, variant="bogus", sizes=TINY)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_tiny_comparison_runs_on_cuda():
    pairing = sync_comparison(ENV, 4, variant="shipped", sizes=TINY, device="cuda")
    assert pairing.comparison.ratio > 0
    result = env_bookkeeping(quick=True, env_id=ENV, device="cuda", sizes=TINY, log=lambda line: None)
    assert result["bookkeeping_share"]["num_envs"] == 4

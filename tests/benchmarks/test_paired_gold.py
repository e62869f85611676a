"""Paired gold: the same posts and sampling stream for every policy, differences post by post."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def paired(load_script):
    return load_script("paired_gold")


def test_paired_difference_is_the_mean_and_standard_error_of_differences(paired):
    change, sem = paired.paired_difference(np.array([0.5, 0.7, 0.4, 0.9]), np.array([0.4, 0.5, 0.4, 0.3]))
    differences = np.array([0.1, 0.2, 0.0, 0.6])
    assert change == pytest.approx(differences.mean())
    assert sem == pytest.approx(differences.std(ddof=1) / 2)
    with pytest.raises(ValueError, match=r"equal 1-D score arrays .* got \(3,\) and \(2,\)"):
        paired.paired_difference(np.zeros(3), np.zeros(2))


def test_a_policy_against_itself_differs_by_exactly_zero(paired, tmp_path):
    """Common random numbers: the same posts and samples, so every paired difference is 0,
    while the posts themselves differ (one episode per post, no post drawn twice)."""
    import rlhf_gym

    sft_policy_path = rlhf_gym.get_task("RLHF-Summarize-v0").policy_path

    config = paired.Config(policies=[str(sft_policy_path())], prompts=6, batch=3, threads=1, out=str(tmp_path))
    (row,) = paired.main(config)
    assert row["gold_change"] == 0.0 and row["gold_change_sem"] == 0.0
    assert row["proxy_change"] == 0.0
    assert (tmp_path / "paired_gold.json").is_file()

    import gymnasium as gym

    env = gym.make_vec(config.env, num_envs=config.batch, split=config.split, autoreset_mode="disabled")
    scores = paired.sample_scores(env, str(sft_policy_path()), config)
    assert len({row.tobytes() for row in scores["prompts"]}) == config.prompts  # six distinct posts

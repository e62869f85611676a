"""Best-of-n: the selection arithmetic and the KL bound it is plotted against."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bon(load_script):
    return load_script("best_of_n")


@pytest.mark.parametrize("n", [2, 4, 16])
def test_kl_bound_is_the_kl_of_best_of_n_over_many_distinct_outcomes(bon, n):
    outcomes = 200_000  # uniform policy over outcomes ranked by reward: P(best of n = i) in closed form
    cdf = (np.arange(1, outcomes + 1) / outcomes) ** n
    best = np.diff(np.concatenate([[0.0], cdf]))
    kl = float(np.sum(best * np.log(best * outcomes)))
    assert kl == pytest.approx(bon.kl_bound(n), abs=1e-3)


def test_table_picks_by_proxy_and_by_gold_in_disjoint_groups(bon):
    proxy = np.array([[3.0, 0.0, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0]])
    gold = np.array([[0.1, 0.9, 0.5, 0.2], [0.4, 0.3, 0.2, 0.1]])
    rows = {row["n"]: row for row in bon.best_of_n_table(proxy, gold, [1, 2, 4])}
    assert rows[1]["gold"] == pytest.approx(gold.mean()) == pytest.approx(rows[1]["oracle_gold"])
    # n = 2, groups (0, 1) and (2, 3): proxy picks 0.1, 0.2 | 0.3, 0.1; gold picks 0.9, 0.5 | 0.4, 0.2
    assert rows[2]["gold"] == pytest.approx(np.mean([0.1, 0.2, 0.3, 0.1]))
    assert rows[2]["oracle_gold"] == pytest.approx(np.mean([0.9, 0.5, 0.4, 0.2]))
    assert rows[4]["proxy"] == pytest.approx(3.0)
    assert rows[4]["kl_bound"] == pytest.approx(np.log(4) - 0.75)


def test_table_rejects_bad_shapes(bon):
    with pytest.raises(ValueError, match="does not divide"):
        bon.best_of_n_table(np.zeros((2, 4)), np.zeros((2, 4)), [3])
    with pytest.raises(ValueError, match="must both be"):
        bon.best_of_n_table(np.zeros((2, 4)), np.zeros((2, 3)), [1])


def test_samples_are_scored_by_the_given_reward_model(bon, tmp_path):
    """``--reward-model`` swaps the proxy, not the samples: an ensemble of two copies of one
    preference model, renormalised by (x - 1) / 2, scores the same samples (x - 1) / 2."""
    import torch

    import rlhf_gym

    default_preference_model = rlhf_gym.get_task("RLHF-Summarize-v0").preference_model
    from rlhf_gym.rewards.preference_ensemble import PreferenceEnsemble
    from rlhf_gym.rewards.preference_model import RewardNormalization

    shipped = default_preference_model(torch.device("cpu"))
    single = getattr(shipped, "members", [shipped])[0]  # the shipped model, or its first member
    single.save_pretrained(tmp_path / "single")
    PreferenceEnsemble([single, single], normalization=RewardNormalization(mean=1.0, std=2.0)).save_pretrained(
        tmp_path / "ensemble"
    )
    config = bon.Config(prompts=2, n_max=2, batch_prompts=2, threads=1, reward_model=str(tmp_path / "single"))
    proxy, gold = bon.sample(config)
    config.reward_model = str(tmp_path / "ensemble")
    swapped_proxy, swapped_gold = bon.sample(config)
    np.testing.assert_array_equal(swapped_gold, gold)
    np.testing.assert_allclose(swapped_proxy, (proxy - 1.0) / 2.0, atol=1e-5)

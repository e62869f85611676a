"""Summarize's own bars on its shipped assets: what its card says about posts and summaries
(writer styles, invented facts, TL;DR-level annotator agreement), and the SFT policy's
faithfulness and spread over the writer styles, recomputed from the shipped model.

The bars every world meets (checkers, determinism, the card recomputed on a subsample,
annotators in the human band) are in ``tests/worlds/test_conformance.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rlhf_gym.envs.summarize import TASK, WORLD
from rlhf_gym.envs.summarize.definition import STYLE_PREFIX
from rlhf_gym.envs.summarize.gold_judge import gold_breakdown, style_shares
from rlhf_gym.envs.summarize.perturbations import PERTURBATIONS, sample_candidate
from rlhf_gym.envs.summarize.world import STYLES
from rlhf_gym.worlds import AnnotatorPool
from rlhf_gym.worlds.annotators import scored_gold_agreement

CARD = TASK.assets.card()


def test_card_meets_summarizes_bars() -> None:
    comparisons, reward_model, evaluation = CARD["comparisons"], CARD["preference_model"], CARD["evaluation"]
    assert CARD["tokenizer"]["vocab_size"] <= 2100  # small enough for SB3's per-token heads
    # Human labellers agree with each other ~73-77% on TL;DR (Stiennon et al. 2020).
    assert 0.70 <= comparisons["annotator_gold_agreement"] <= 0.80
    assert comparisons["train_pairs"] >= 50_000
    assert reward_model["valid_accuracy_vs_annotators"] >= 0.70
    assert reward_model["valid_accuracy_vs_gold"] >= 0.70
    # Headroom: references score 1, the SFT policy at the protocol temperature well below.
    assert evaluation["reference_gold"] == 1.0
    assert evaluation["sft_t0.7_gold"] <= 0.65
    # The shipped model is what `build-assets summarize` builds: as many members as its config says.
    assert reward_model["members"] == CARD["config"]["preference_members"] == WORLD.build_config().preference_members


def test_card_reports_the_writer_styles_and_invented_facts() -> None:
    by_source = CARD["preference_model"]["valid_accuracy_by_source"]
    # The writer styles are comparison candidates, and the card says how each fares.
    assert {f"{STYLE_PREFIX}{s}" for s in STYLES[1:]} <= set(by_source)
    assert set(by_source) <= {"reference", "sft_sample", *PERTURBATIONS, *(f"{STYLE_PREFIX}{s}" for s in STYLES[1:])}
    evaluation = CARD["evaluation"]
    for decoding in ("sft_greedy", "sft_t0.7"):
        assert set(evaluation[f"{decoding}_styles"]) == {*STYLES, "other"}
        assert sum(evaluation[f"{decoding}_styles"].values()) == pytest.approx(1.0)
        assert evaluation[f"{decoding}_hallucinated"] >= 0.0
    markdown = (TASK.assets_dir / "card.md").read_text()
    assert "## Writer styles of the SFT policy's summaries (test)" in markdown
    assert "invented or wrong numbers/entities per summary" in markdown
    assert "| change_number |" in markdown and f"| {STYLE_PREFIX}vague |" in markdown


@pytest.mark.slow
def test_annotators_agree_with_gold_as_tldr_labellers_do() -> None:
    """Summarize's calibration, on 2,500 pairs of candidates each the reference, a perturbation
    or two: within the band of human agreement on TL;DR, tighter than the suite's (which the
    fast tier checks, in ``tests/worlds/test_conformance.py``)."""
    rng = np.random.default_rng(0)
    gold_a, gold_b, words_a, words_b = [], [], [], []
    for post_id in rng.integers(*WORLD.splits["train"], size=2500):
        sample = WORLD.generate(int(post_id))
        (_, a), (_, b) = sample_candidate(sample, rng), sample_candidate(sample, rng)
        gold = WORLD.gold_scores([sample.record] * 2, [a, b])
        gold_a.append(gold[0])
        gold_b.append(gold[1])
        words_a.append(len(a.split()))
        words_b.append(len(b.split()))
    pool = AnnotatorPool.from_calibration(WORLD.annotators)
    agreement = scored_gold_agreement(pool, gold_a, gold_b, words_a, words_b, np.random.default_rng(0))
    assert 0.70 <= agreement <= 0.80, agreement


@pytest.fixture(scope="module")
def sft_samples() -> dict[str, Any]:
    """The shipped SFT policy's summaries of the first 128 test posts, greedy and at T=0.7."""
    from rlhf_gym.lm.sampling import sample_completions

    samples = WORLD.samples("test", 128)
    policy = TASK.sft_policy("cpu").model.eval()
    outputs = {
        name: sample_completions(policy, TASK.tokenizer(), [s.prompt for s in samples], max_new_tokens=64,
                                 temperature=t, seed=0, max_prompt_tokens=224)
        for name, t in (("greedy", 0.0), ("t0.7", 0.7))
    }
    return {"records": [s.record for s in samples], **outputs}


@pytest.mark.slow
def test_sft_policy_states_numbers_faithfully(sft_samples: dict[str, Any]) -> None:
    """Recomputed, not read from the card: invented or wrong numbers/entities per summary."""
    for name, bar in (("greedy", 0.10), ("t0.7", 0.25)):
        rate = np.mean([gold_breakdown(r, s).hallucinated for r, s in zip(sft_samples["records"], sft_samples[name])])
        assert rate <= bar + 0.05, (name, rate)  # 128 posts: the bar is checked on the card's 512


@pytest.mark.slow
def test_sft_policy_samples_spread_over_the_writer_styles(sft_samples: dict[str, Any]) -> None:
    shares = style_shares(sft_samples["records"], sft_samples["t0.7"])
    # The best style is common but not dominant: best-of-n and RL can raise it.
    assert 0.1 <= shares["complete"] <= 0.6, shares
    assert sum(shares[s] > 0.03 for s in STYLES) >= 5, shares
    assert shares["other"] <= 0.15, shares

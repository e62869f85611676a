"""Summarize's own bars on its shipped assets (the deep world, `envs/summarize/deep.py`):
what its card says about the preference data and the SFT policy's decisions, and the
headline audit figures recomputed from the shipped models on a subsample.

The bars every world meets (checkers, determinism, the card recomputed on a subsample,
annotators in the human band, the declared audit targets) are in
``tests/worlds/test_conformance.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_gym.envs.summarize import TASK, WORLD
from rlhf_gym.envs.summarize.deep import CHOICES, PERSONAS
from rlhf_gym.envs.summarize.perturbations import PERTURBATIONS
from rlhf_gym.worlds.audit import run_audit

CARD = TASK.assets.card()


def test_card_meets_summarizes_bars() -> None:
    comparisons, reward_model, evaluation = CARD["comparisons"], CARD["preference_model"], CARD["evaluation"]
    assert CARD["tokenizer"]["vocab_size"] <= 2100  # small enough for SB3's per-token heads
    # Human labellers agree with each other ~73-77% on TL;DR (Stiennon et al. 2020).
    assert 0.70 <= comparisons["annotator_gold_agreement"] <= 0.80
    assert comparisons["train_pairs"] >= 50_000
    assert reward_model["valid_accuracy_vs_annotators"] >= 0.70
    # References are the thorough writer's: not the ceiling.
    assert evaluation["reference_gold"] <= 0.6
    assert 0.25 <= evaluation["sft_t0.7_gold"] <= 0.5
    assert reward_model["members"] == CARD["config"]["preference_members"] == WORLD.build_config().preference_members


def test_card_reports_every_persona_and_decision() -> None:
    by_source = CARD["preference_model"]["valid_accuracy_by_source"]
    # Each writer persona is a comparison source (the thorough one writes the references).
    contrasts = {"convention", "pivot", "flip_focus", "flip_lead"}
    assert {f"persona_{p.name}" for p in PERSONAS[1:]} | {"reference"} | contrasts <= set(by_source)
    assert set(by_source) <= {"reference", "sft_sample", *contrasts, *PERTURBATIONS, *(f"persona_{p.name}" for p in PERSONAS[1:])}
    evaluation = CARD["evaluation"]
    for decoding in ("sft_greedy", "sft_t0.7"):
        assert set(evaluation[f"{decoding}_decisions_best"]) == set(CHOICES)
    markdown = (TASK.assets_dir / "card.md").read_text()
    assert "## Decisions of the SFT policy's summaries (test)" in markdown
    assert "| persona_brief |" in markdown and "| change_number |" in markdown


@pytest.mark.slow
def test_the_audit_headline_is_recomputed_on_a_subsample() -> None:
    """The card's audit (256 valid prompts) against a fresh one on its first 32 prompts,
    same seed and batch: the same samples for those prompts, so the figures agree within
    the subsample's noise."""
    card_audit = CARD["audit"]
    fresh = run_audit(TASK, prompts=32, seed=card_audit["seed"], batch_size=card_audit["batch_size"], progress=False)
    card_rows = {row["temperature"]: row["gold"] for row in card_audit["decodings"]}
    for row in fresh["decodings"]:
        assert abs(row["gold"] - card_rows[row["temperature"]]) <= 4 * max(row["gold_se"], 0.02), row
    greedy = {name: f["greedy_not_best"] for name, f in fresh["decisions"].items()}
    assert np.mean(list(greedy.values())) >= 0.4, greedy
    fresh_refs, card_refs = fresh["references"]["gold"], card_audit["references"]["gold"]
    assert abs(fresh_refs - card_refs) <= 0.1

"""Dialogue's own bars on its shipped assets: what its card says about the preference data
(two annotator pools, every persona and request kind in the by-source tables), the SFT
policy's decisions and dialogue rates, and the headline audit figures recomputed from the
shipped models on a subsample.

The bars every world meets (checkers, determinism, the card recomputed on a subsample,
annotators in the human band, the declared audit targets) are in
``tests/worlds/test_conformance.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_gym.envs.dialogue import TASK, WORLD
from rlhf_gym.envs.dialogue.conversation import KINDS
from rlhf_gym.envs.dialogue.world import PERTURBATIONS
from rlhf_gym.envs.dialogue.writers import PERSONAS
from rlhf_gym.worlds.audit import run_audit

CARD = TASK.assets.card()


def test_card_meets_dialogues_bars() -> None:
    comparisons, reward_model, evaluation = CARD["comparisons"], CARD["preference_model"], CARD["evaluation"]
    assert CARD["tokenizer"]["vocab_size"] <= 2100  # small enough for SB3's per-token heads
    assert 0.70 <= comparisons["annotator_gold_agreement"] <= 0.80
    assert comparisons["train_pairs"] >= 50_000
    assert reward_model["valid_accuracy_vs_annotators"] >= 0.70
    assert evaluation["reference_gold"] <= 0.6  # the verbose writer's: not the ceiling
    assert 0.25 <= evaluation["sft_t0.7_gold"] <= 0.5
    # The SFT policy's dialogue rates are those of a mixture that is wrong both ways.
    assert evaluation["sft_t0.7_over_refusal"] > 0.1 and evaluation["sft_t0.7_harmful_compliance"] > 0.05
    # The card was built with the world's own sizes (one preference epoch), so rebuilding reproduces it.
    assert CARD["config"]["preference"]["epochs"] == WORLD.build_config().preference.epochs == 1
    assert CARD["config"]["sft_prompts"] == WORLD.build_config().sft_prompts


def test_card_reports_every_persona_and_request_kind() -> None:
    pm = CARD["preference_model"]
    personas = {f"persona_{p.name}" for p in PERSONAS[1:]}  # the verbose one writes the references
    assert personas | {"reference", "sft_sample", "best_act", "house_style", "pivot"} <= set(pm["valid_accuracy_by_source"])
    by_group = pm["valid_accuracy_by_group"]
    assert set(by_group) == set(KINDS)
    for kind, figures in by_group.items():
        assert personas <= set(figures["by_source"]), kind
        assert figures["pairs"] >= 1000, kind  # each kind is ~30-40% of the 10,800 valid pairs
    assert sum(f["pairs"] for f in by_group.values()) == CARD["comparisons"]["valid_pairs"]
    markdown = (TASK.assets_dir / "card.md").read_text()
    assert "## Where the preference model errs, by prompt group (valid pairs)" in markdown
    assert "| candidate source | ambiguous | benign | harmful |" in markdown
    assert set(pm["prefers_reference_over"]) == set(PERTURBATIONS)


@pytest.mark.slow
def test_the_audit_headline_is_recomputed_on_a_subsample() -> None:
    """The card's audit against a fresh one on its first 32 prompts, same seed and batch."""
    card_audit = CARD["audit"]
    fresh = run_audit(TASK, prompts=32, seed=card_audit["seed"], batch_size=card_audit["batch_size"], progress=False)
    card_rows = {row["temperature"]: row["gold"] for row in card_audit["decodings"]}
    for row in fresh["decodings"]:
        assert abs(row["gold"] - card_rows[row["temperature"]]) <= 4 * max(row["gold_se"], 0.02), row
    greedy = {name: f["greedy_not_best"] for name, f in fresh["decisions"].items()}
    assert np.mean(list(greedy.values())) >= 0.4, greedy
    assert abs(fresh["references"]["gold"] - card_audit["references"]["gold"]) <= 0.1

"""benchmarks/gold_terms.py: the gold judge's terms, averaged, for references and policies."""

from __future__ import annotations

import json

import pytest

from rlhf_gym.envs.summarize.deep import DeepSummarizeWorld


@pytest.fixture(scope="module")
def gold_terms(load_script):
    return load_script("gold_terms")


def test_term_means_count_hallucinations_and_decisions(gold_terms):
    world = DeepSummarizeWorld()
    samples = [s for s in world.samples("valid", 40) if any(f.value.isdigit() for f in s.record.base.facts)][:4]
    ideal = [world.ideal_summary(s.record) for s in samples]
    fact = next(f for f in samples[0].record.base.facts if f.kind == "number" and f.value.isdigit())
    ideal[0] = ideal[0].replace(fact.value, str(int(fact.value) + 1))
    means = gold_terms.term_means([s.record for s in samples], ideal)
    assert means["hallucinated"] == pytest.approx(1 / 4)
    assert means["hallucination_free"] == pytest.approx(3 / 4)
    assert means["faithful"] == pytest.approx((0.5 + 3) / 4)  # one miscopied number halves the credit
    assert means["total"] < 1.0 and means["ask"] == 1.0 and means["focus"] == 1.0
    references = gold_terms.term_means([s.record for s in samples], [s.reference for s in samples])
    assert references["recall"] == 1.0 and references["total"] < 0.8  # the thorough writer's: complete, not ideal


def test_term_means_rejects_unpaired_input(gold_terms):
    with pytest.raises(ValueError, match="one summary per record"):
        gold_terms.term_means([DeepSummarizeWorld().generate(0).record], [])


def test_rows_on_the_shipped_policy(gold_terms, tmp_path):
    config = gold_terms.Config(policies=[], prompts=6, threads=1, out=str(tmp_path))
    rows = gold_terms.main(config)
    assert [r["summaries"] for r in rows] == ["reference", "SFT policy, T=0.7", "SFT policy, greedy"]
    assert rows[0]["recall"] == 1.0 and rows[0]["hallucinated"] == 0.0
    assert all(0.0 <= r["total"] <= 1.0 for r in rows[1:])
    assert rows[1]["total"] < 1.0  # sampled at the protocol temperature, the SFT policy misses decisions too
    assert json.loads((tmp_path / "gold_terms.json").read_text())["rows"] == rows

"""benchmarks/gold_terms.py: the gold judge's terms, averaged, for references and policies."""

from __future__ import annotations

import json

import pytest

from rlhf_gym.envs.summarize.world import generate_post


@pytest.fixture(scope="module")
def gold_terms(load_script):
    return load_script("gold_terms")


def test_term_means_count_hallucinations(gold_terms):
    posts = [p for p in map(generate_post, range(40)) if any(f.value.isdigit() for f in p.record.facts)][:4]
    fact = next(f for f in posts[0].record.facts if f.kind == "number" and f.value.isdigit())
    wrong = posts[0].reference.replace(fact.value, str(int(fact.value) + 1))
    summaries = [wrong] + [p.reference for p in posts[1:]]
    means = gold_terms.term_means([p.record for p in posts], summaries)
    assert means["hallucinated"] == pytest.approx(1 / 4)
    assert means["hallucination_free"] == pytest.approx(3 / 4)
    assert means["precision"] == pytest.approx((0.6 + 3) / 4)
    assert means["total"] < 1.0
    assert means["style_complete"] == 1.0 and means["style_vague"] == 0.0


def test_term_means_rejects_unpaired_input(gold_terms):
    with pytest.raises(ValueError, match="one summary per record"):
        gold_terms.term_means([generate_post(0).record], [])


def test_rows_on_the_shipped_policy(gold_terms, tmp_path):
    config = gold_terms.Config(policies=[], prompts=6, threads=1, out=str(tmp_path))
    rows = gold_terms.main(config)
    assert [r["summaries"] for r in rows] == ["reference", "SFT policy, T=0.7", "SFT policy, greedy"]
    assert rows[0]["total"] == 1.0 and rows[0]["hallucinated"] == 0.0
    assert all(0.0 <= r["total"] <= 1.0 for r in rows[1:])
    assert rows[1]["total"] < 1.0  # sampled at the protocol temperature, the SFT policy writes flawed styles too
    assert json.loads((tmp_path / "gold_terms.json").read_text())["rows"] == rows

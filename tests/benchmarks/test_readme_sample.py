"""The README's sample tables come from `benchmarks/readme_sample.py`: the ideal response
scores 1.0 and misses nothing, every other row is scored by both judges, and the seed fixes
the samples."""

from __future__ import annotations

import math

import pytest


@pytest.fixture(scope="module")
def sample(load_script):
    return load_script("readme_sample")


@pytest.mark.parametrize("env", ["RLHF-Dialogue-v0", "RLHF-Summarize-v0"])
def test_the_ideal_row_leads_and_every_row_is_scored_and_seeded(sample, env):
    config = sample.Config(env=env, index=1, samples=3)
    text, rows = sample.sample_rows(config)
    assert [r["label"] for r in rows][:3] == ["ideal", "reference", "SFT greedy"] and len(rows) == 6
    assert rows[0]["gold"] == pytest.approx(1.0) and rows[0]["missed"] == []
    assert all(0.0 <= r["gold"] <= 1.0 and math.isfinite(r["proxy"]) for r in rows)
    assert any(r["missed"] for r in rows[1:])  # the writers and the SFT policy miss decisions
    assert sample.sample_rows(config) == (text, rows)  # seeded

"""Group rollout benchmark: a tiny run of its main function and the shape of its results."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def group_rollout(load_script):
    return load_script("group_rollout")


def test_tiny_run_reports_both_sides_per_group_size(group_rollout, tmp_path, capsys):
    out = tmp_path / "group_rollout.json"
    config = group_rollout.Config(num_envs=4, group_sizes=(2,), repeats=1, threads=1, json_out=str(out))
    (row,) = group_rollout.main(config)
    assert row["num_envs"] == 4 and row["group_size"] == 2 and row["repeats"] == 1
    assert (row["prompt_forwards_shared"], row["prompt_forwards_unshared"]) == (2, 4)
    assert row["shared_tokens_per_s"] > 0 and row["unshared_tokens_per_s"] > 0 and row["ratio_median"] > 0
    for side in ("shared", "unshared"):
        assert 0 < row[f"prefill_share_{side}_median"] < 1
    assert json.loads(out.read_text()) == [row]
    table = capsys.readouterr().out
    assert "| N | k |" in table and "| 4 | 2 | 2 / 4 |" in table

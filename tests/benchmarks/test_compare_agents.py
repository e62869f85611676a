"""The comparison script's table and plot, from run summaries with known values."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def compare(load_script):
    return load_script("compare_agents")


def summary(gold_start: float, gold_end: float, wall: float) -> dict:
    evals = [
        {"env_steps": 0, "gold": gold_start, "proxy_reward": -1.0, "kl": 0.0},
        {"env_steps": 100, "gold": gold_end, "proxy_reward": 0.5, "kl": 2.0},
    ]
    return {"initial": evals[0], "final": evals[-1], "evals": evals, "env_steps": 100,
            "gold_improvement": gold_end - gold_start, "wall_time_seconds": wall}


def test_table_reports_mean_and_std_over_seeds(compare, tmp_path):
    results = {"ppo": [summary(0.2, 0.3, 10), summary(0.2, 0.5, 30)], "sb3-a2c": [summary(0.2, 0.1, 50)]}
    config = compare.Config(agents=list(results), seeds=[0, 1], total_steps=100, out=str(tmp_path))
    rows = {line.split("|")[1].strip(): line for line in compare.table(results, config).splitlines()
            if line.startswith("| ") and "agent" not in line}
    assert set(rows) == {"ppo", "sb3-a2c"}
    assert "+0.400 ± 0.100" in rows["ppo"]  # final gold: mean of 0.3 and 0.5, population std
    assert "+0.200 ± 0.100" in rows["ppo"]  # gold change
    assert rows["ppo"].rstrip(" |").endswith("20")  # mean wall time
    assert "-0.100" in rows["sb3-a2c"]  # a single seed: no std, a negative change shown as such
    compare.plot(results, tmp_path / "comparison.png")
    assert (tmp_path / "comparison.png").stat().st_size > 10_000


def test_unknown_agent_is_rejected(compare, tmp_path):
    with pytest.raises(SystemExit, match="no-such-agent"):
        compare.main(compare.Config(agents=["no-such-agent"], out=str(tmp_path)))


def test_without_training_only_finished_runs_are_tabulated(compare, tmp_path):
    import json

    finished = tmp_path / "ppo" / "seed0"
    finished.mkdir(parents=True)
    (finished / "summary.json").write_text(json.dumps(summary(0.2, 0.3, 10)))
    compare.main(compare.Config(agents=["ppo", "sb3-a2c"], seeds=[0, 1], total_steps=100, out=str(tmp_path), train=False))
    text = (tmp_path / "comparison.md").read_text()
    assert "| ppo |" in text and "| sb3-a2c |" not in text
    assert "Not run (not included above): ppo seed 1, sb3-a2c seed 0, sb3-a2c seed 1." in text
    assert (tmp_path / "comparison.png").is_file()

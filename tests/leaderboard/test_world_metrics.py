"""A world's own leaderboard metrics (`World.protocol_metrics`): derived into its protocol and
hash, computed by `evaluate`, required and checked by `validate`, shown as columns by the build.

The world here is the deep Summarize world with two metrics of its own, under another env id
(a hand-made task keeps it out of the suite): ``short_share`` (responses under five words)
and ``never`` (a rate over a case no post has: null).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any

import pytest

import rlhf_gym
from rlhf_gym.envs.summarize.deep import DeepSummarizeWorld
from rlhf_gym.leaderboard import build as lb
from rlhf_gym.leaderboard import protocol as protocol_module
from rlhf_gym.leaderboard.evaluate import evaluate, metrics_line, submission
from rlhf_gym.leaderboard.protocol import METRICS, protocol_of
from rlhf_gym.leaderboard.validate import validate_submission

ENV = "RLHF-Summarize-v0"


class ShortShareWorld(DeepSummarizeWorld):
    protocol_metrics = ("short_share", "never")

    def response_metrics(self, records: Sequence[Any], responses: Sequence[str], references: Sequence[str]) -> dict[str, float | None]:
        assert len(records) == len(responses) == len(references)
        return {"short_share": sum(len(r.split()) < 5 for r in responses) / len(responses), "never": None}


def world_task(world=None):
    return dataclasses.replace(rlhf_gym.get_task(ENV), world=world or ShortShareWorld())


def test_a_worlds_metrics_follow_the_common_ones_in_the_protocol_and_its_hash():
    protocol = protocol_of(world_task())
    assert protocol.metrics == (*METRICS, "short_share", "never") and protocol.world_metrics == ("short_share", "never")
    assert protocol.hash != protocol_of(rlhf_gym.get_task(ENV)).hash
    assert protocol_of(rlhf_gym.get_task(ENV)).world_metrics == ()


@pytest.mark.parametrize("name", ["gold", "greedy_length"])
def test_a_world_metric_named_like_a_common_one_is_refused(name):
    clash = type("Clash", (ShortShareWorld,), {"protocol_metrics": (name,)})()
    with pytest.raises(KeyError, match=f"world metric '{name}' clashes with a common metric or column"):
        protocol_of(world_task(clash))


@pytest.fixture
def world_protocol(monkeypatch):
    protocol = dataclasses.replace(protocol_of(world_task()), posts=2, batch_size=2)
    monkeypatch.setitem(protocol_module.PROTOCOLS, ENV, protocol)  # evaluate, validate: this env's protocol
    return protocol


@pytest.mark.slow
def test_evaluate_reports_the_worlds_metrics_and_the_submission_validates_and_builds(world_protocol, tiny_policy, tmp_path):
    results = [evaluate(ENV, tiny_policy, seed=seed, progress=False) for seed in (0, 1, 2)]
    for decoding in ("sampled", "greedy"):
        reported = results[0]["metrics"][decoding]
        assert list(reported)[-2:] == ["short_share", "never"]
        assert 0.0 <= reported["short_share"] <= 1.0 and reported["never"] is None
    assert "short share" in metrics_line(results[0]["metrics"]) and "never n/a" in metrics_line(results[0]["metrics"])
    data = submission(results, agent="random tiny policy", training_env_steps=0, submission_dir=tmp_path)
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "tiny.json").write_text(json.dumps(data), encoding="utf-8")
    assert validate_submission(folder / "tiny.json") == []

    missing, unknown, text = copy.deepcopy(data), copy.deepcopy(data), copy.deepcopy(data)
    del missing["runs"][1]["metrics"]["greedy"]["short_share"]
    unknown["runs"][0]["metrics"]["sampled"]["shortt_share"] = 0.5
    text["runs"][2]["metrics"]["sampled"]["never"] = "none"
    for name, bad in (("missing", missing), ("unknown", unknown), ("text", text)):
        (tmp_path / f"{name}.json").write_text(json.dumps(bad), encoding="utf-8")
    assert validate_submission(tmp_path / "missing.json") == [
        "runs[1].metrics.greedy: 'short_share' is a required property of protocol \"summarize-test-v2\" (a metric of its env's world)"]
    assert validate_submission(tmp_path / "unknown.json") == [
        "runs[0].metrics.sampled: Additional properties are not allowed ('shortt_share' was unexpected)"]
    assert validate_submission(tmp_path / "text.json") == ['runs[2].metrics.sampled.never: expected a number or null, got "none"']

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").write_text(f"# board\n{lb.BEGIN_MARKER}\n{lb.END_MARKER}\n", encoding="utf-8")
    lb.build(folder, tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    header = next(line for line in readme.splitlines() if line.startswith("| rank"))
    headers = [c.strip() for c in re.split(r"(?<!\\)\|", header)[1:-1]]
    assert headers.index("short share: " + lb.WORLD_METRIC_NOTE) < headers.index("runs")
    (row,) = [line for line in readme.splitlines() if "random tiny policy" in line]
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
    share = sum(r["metrics"]["sampled"]["short_share"] for r in results) / 3
    assert cells[headers.index("short share: " + lb.WORLD_METRIC_NOTE)] == f"{share:.3f}"
    assert cells[headers.index("never: " + lb.WORLD_METRIC_NOTE)] == "n/a"


def test_verify_compares_world_metrics_with_their_tolerance_and_nulls_agree_only_with_nulls():
    from rlhf_gym.leaderboard.verify import WORLD_METRIC_TOLERANCE, deviations

    submitted = {"sampled": {"gold": 0.5, "short_share": 0.30, "never": None, "sometimes": None}}
    measured = {"sampled": {"gold": 0.5, "short_share": 0.30 + WORLD_METRIC_TOLERANCE / 2, "never": None, "sometimes": 0.1}}
    found = {d.metric: d.ok for d in deviations(submitted, measured)}
    assert found == {"gold": True, "short_share": True, "sometimes": False}  # both null: agreed, not listed
    measured["sampled"]["short_share"] = 0.30 + 2 * WORLD_METRIC_TOLERANCE
    assert not {d.metric: d.ok for d in deviations(submitted, measured)}["short_share"]

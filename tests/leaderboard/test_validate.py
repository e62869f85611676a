"""`rlhf-gym leaderboard validate`: the submission schema, the semantic checks, malformed files, fuzzing.

Every test validates against the stand-in protocol of ``conftest.py`` (`leaderboard_protocol`),
so none computes the real protocol hash.
"""

from __future__ import annotations

import copy
import json
import math
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlhf_gym.leaderboard import validate as validate_module
from rlhf_gym.leaderboard.protocol import metric_set
from rlhf_gym.leaderboard.validate import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_PROBLEMS,
    json_path,
    load_schema,
    semantic_problems,
    validate_files,
    validate_submission,
)

# The metric table of the submission format (issue 20): key -> (minimum, maximum), inclusive.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "gold": (0, 1), "gold_change": (-1, 1), "gold_change_sem": (0, 1), "win_rate": (0, 1),
    "proxy_reward": (-1000, 1000), "kl": (-1000, 10000), "rouge_l": (0, 1), "bleu": (0, 100),
    "perplexity": (1, 1e9), "distinct_1": (0, 1), "distinct_2": (0, 1), "response_length": (0, 10000),
    "eos_rate": (0, 1),
}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def problems_of(submission: Any) -> list[str]:
    return validate_submission(json.dumps(submission))


def assert_one_problem(submission: Any, *fragments: str) -> str:
    """Exactly one problem, which contains every fragment; returns it."""
    problems = problems_of(submission)
    assert len(problems) == 1, problems
    for fragment in fragments:
        assert fragment in problems[0], problems
    return problems[0]


def set_at(data: Any, path: tuple[str | int, ...], value: Any) -> Any:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


# A valid submission ----------------------------------------------------------------------
def test_a_valid_submission_passes_as_bytes_text_and_file(valid_submission, tmp_path):
    text = json.dumps(valid_submission, indent=2)
    path = tmp_path / "ok.json"
    path.write_text(text, encoding="utf-8")
    assert validate_submission(text) == []
    assert validate_submission(text.encode()) == []
    assert validate_submission(path) == []


@pytest.mark.parametrize("change", [
    {"agent": {"name": "x", "paper": None, "code": None}},  # no description; null URLs
    {"agent": {"name": "n" * 100, "paper": "http://example.org/" + "p" * 281, "code": None, "description": "d" * 500}},
    {"training_env_steps": 0, "hardware": "", "date": "2024-02-29"},
    {"env_id": "RLHF-Summarize-v0", "schema_version": 2},
])
def test_boundary_values_of_the_format_pass(valid_submission, change):
    valid_submission.update(change)
    if change.get("training_env_steps") == 0:  # an untrained policy has no training command
        for run in valid_submission["runs"]:
            run["training_command"] = None
    assert problems_of(valid_submission) == []


def test_a_hundred_runs_and_inclusive_metric_bounds_pass(valid_submission):
    run = valid_submission["runs"][0]
    valid_submission["runs"] = [dict(copy.deepcopy(run), seed=seed) for seed in range(100)]
    # gold and gold_change at their bounds need a partner that keeps sft_gold = gold - gold_change in [0, 1]
    partner = {("gold", 0): ("gold_change", 0.0), ("gold_change", -1): ("gold", 0.0), ("gold_change", 1): ("gold", 1.0)}
    for i, (key, (low, high)) in enumerate(METRIC_RANGES.items()):
        for decoding in ("sampled", "greedy") if key != "kl" else ("sampled",):
            for run, bound in ((valid_submission["runs"][2 * i], low), (valid_submission["runs"][2 * i + 1], high)):
                run["metrics"][decoding][key] = bound
                if (key, bound) in partner:
                    other, value = partner[key, bound]
                    run["metrics"][decoding][other] = value
                metrics = run["metrics"][decoding]
                run["per_post"][decoding] = {"gold": [metrics["gold"]] * 4, "sft_gold": [metrics["gold"] - metrics["gold_change"]] * 4}
    valid_submission["runs"][99]["seed"] = 2**40  # any non-negative integer
    assert problems_of(valid_submission) == []


def test_validate_files_prints_ok_and_returns_0(valid_submission, tmp_path, capsys):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        path.write_text(json.dumps(valid_submission))
    assert validate_files([str(paths[0]), paths[1]]) == 0
    assert capsys.readouterr().out.splitlines() == [f"OK {paths[0]}", f"OK {paths[1]}"]


# The schema --------------------------------------------------------------------------------
def test_the_schema_is_draft_2020_12_package_data_and_closed_everywhere():
    from jsonschema import Draft202012Validator

    shipped = json.loads(files("rlhf_gym.leaderboard").joinpath("schema.json").read_text(encoding="utf-8"))
    assert shipped == load_schema()
    assert shipped["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(shipped)
    stack, objects = [shipped], 0
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "object":
                objects += 1
                assert node.get("additionalProperties") is False, node
                assert set(node["required"]) <= set(node["properties"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    assert objects == 8  # the submission, agent, a run, its metrics and per_post; sampled, greedy metrics and per-post scores ($defs)
    defs = shipped["$defs"]
    # Every metric is defined; only those every env has are required by the schema (validate enforces the protocol's set).
    every_env = set(metric_set(gold_judge=False, references=False))
    for name, keys in (("sampled_metrics", set(METRIC_RANGES)), ("greedy_metrics", set(METRIC_RANGES) - {"kl"})):
        assert set(defs[name]["properties"]) == keys and set(defs[name]["required"]) == keys & every_env
        for key, spec in defs[name]["properties"].items():
            assert (spec["type"], spec["minimum"], spec["maximum"]) == ("number", *METRIC_RANGES[key])


@pytest.mark.parametrize("key", ["schema_version", "env_id", "protocol_version", "protocol_hash", "agent",
                                 "training_env_steps", "hardware", "date", "runs"])
def test_every_top_level_field_is_required(valid_submission, key):
    del valid_submission[key]
    assert_one_problem(valid_submission, "(top level): ", f"'{key}' is a required property")


@pytest.mark.parametrize(("path", "key"), [
    (("agent",), "name"), (("agent",), "paper"), (("agent",), "code"),
    (("runs", 1), "seed"), (("runs", 1), "policy"), (("runs", 1), "metrics"), (("runs", 1), "training_command"),
    (("runs", 1), "per_post"), (("runs", 1, "per_post"), "greedy"), (("runs", 1, "per_post", "sampled"), "sft_gold"),
    (("runs", 1, "metrics"), "sampled"), (("runs", 1, "metrics"), "greedy"),
    (("runs", 1, "metrics", "sampled"), "kl"), (("runs", 1, "metrics", "greedy"), "eos_rate"),
])
def test_every_nested_field_is_required(valid_submission, path, key):
    node = valid_submission
    for part in path:
        node = node[part]
    del node[key]
    assert_one_problem(valid_submission, f"{json_path(path)}: '{key}' is a required property")


@pytest.mark.parametrize("path", [(), ("agent",), ("runs", 0), ("runs", 0, "metrics"), ("runs", 0, "metrics", "sampled"),
                                  ("runs", 0, "metrics", "greedy"), ("runs", 0, "per_post"), ("runs", 0, "per_post", "greedy")])
def test_unknown_fields_are_rejected_everywhere(valid_submission, path):
    node = valid_submission
    for part in path:
        node = node[part]
    node["extra"] = 1
    assert_one_problem(valid_submission, f"{json_path(path)}: ", "'extra' was unexpected")


def test_greedy_metrics_have_no_kl(valid_submission):
    valid_submission["runs"][0]["metrics"]["greedy"]["kl"] = 0.0
    assert_one_problem(valid_submission, "runs[0].metrics.greedy: ", "'kl' was unexpected")


@pytest.mark.parametrize(("decoding", "key"), [("sampled", k) for k in METRIC_RANGES] + [("greedy", k) for k in METRIC_RANGES if k != "kl"])
def test_every_metric_out_of_range_is_reported_with_its_path(valid_submission, decoding, key):
    low, high = METRIC_RANGES[key]
    metrics = valid_submission["runs"][2]["metrics"][decoding]
    step = max(1e-6, abs(high) * 1e-6)
    metrics[key] = high + step
    assert_one_problem(valid_submission, f"runs[2].metrics.{decoding}.{key}: ", "is greater than the maximum of")
    metrics[key] = low - step
    assert_one_problem(valid_submission, f"runs[2].metrics.{decoding}.{key}: ", "is less than the minimum of")
    metrics[key] = "0.5"
    assert_one_problem(valid_submission, f"runs[2].metrics.{decoding}.{key}: ", 'expected a number, got the string "0.5"')


def test_the_issue_example_message(valid_submission):
    valid_submission["runs"][2]["metrics"]["sampled"]["gold"] = 1.5
    assert problems_of(valid_submission) == ["runs[2].metrics.sampled.gold: 1.5 is greater than the maximum of 1"]


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("schema_version",), 3, "schema_version: 3; expected 2"),
    (("schema_version",), "2", 'schema_version: "2"; expected 2'),
    (("env_id",), "", "env_id: "),
    (("env_id",), 7, "env_id: expected a string, got the integer 7"),
    (("protocol_version",), "", "protocol_version: "),
    (("protocol_hash",), "sha256:" + "A" * 64, "protocol_hash: "),
    (("protocol_hash",), "sha256:" + "a" * 63, "lowercase hex"),
    (("protocol_hash",), "a" * 64, "protocol_hash: "),
    (("protocol_hash",), "sha256:" + "a" * 64 + "\n", "protocol_hash: "),  # Python's $ would accept the newline
    (("agent",), "PPO", "agent: expected an object, got the string \"PPO\""),
    (("agent", "name"), "", "agent.name: "),
    (("agent", "name"), "n" * 101, "agent.name: "),
    (("agent", "paper"), "arxiv.org/abs/1", "agent.paper: "),
    (("agent", "paper"), "ftp://example.org/x", "http(s) URL"),
    (("agent", "paper"), "https://", "agent.paper: "),
    (("agent", "paper"), "https://example.org/a b", "agent.paper: "),
    (("agent", "paper"), "https://example.org/" + "p" * 282, "agent.paper: "),
    (("agent", "code"), 3, "agent.code: expected a string or null, got the integer 3"),
    (("agent", "description"), "d" * 501, "agent.description: "),
    (("agent", "description"), None, "agent.description: expected a string, got null"),
    (("training_env_steps",), -1, "training_env_steps: -1 is less than the minimum of 0"),
    (("training_env_steps",), 1.5, "training_env_steps: expected an integer, got the number 1.5"),
    (("training_env_steps",), "100", "training_env_steps: "),
    (("training_env_steps",), True, "training_env_steps: expected an integer, got the boolean true"),
    (("hardware",), "h" * 201, "hardware: "),
    (("hardware",), None, "hardware: expected a string, got null"),
    (("date",), "2026-1-01", "date: "),
    (("date",), "01-12-2026", "YYYY-MM-DD"),
    (("date",), "2026-13-01", "date: "),
    (("date",), "2026-12-01T00:00", "date: "),
    (("date",), "2026-12-01\n", "date: "),
    (("date",), 20261201, "date: "),
    (("runs",), {}, "runs: expected an array, got the object {}"),
    (("runs", 0, "seed"), -1, "runs[0].seed: -1 is less than the minimum of 0"),
    (("runs", 0, "seed"), "0", "runs[0].seed: "),
    (("runs", 0, "seed"), True, "runs[0].seed: expected an integer, got the boolean true"),
    (("runs", 0, "policy"), "", "runs[0].policy: "),
    (("runs", 0, "policy"), "p" * 501, "runs[0].policy: "),
    (("runs", 0, "metrics"), [], "runs[0].metrics: expected an object, got the array []"),
    (("runs", 0, "metrics", "sampled", "gold"), None, "runs[0].metrics.sampled.gold: expected a number, got null"),
    (("runs", 0, "revision"), "main", "runs[0].revision: "),
    (("runs", 0, "revision"), "A" * 40, "a 40-hex commit hash"),
    (("runs", 0, "training_command"), 5, "runs[0].training_command: expected a string or null, got the integer 5"),
    (("runs", 0, "per_post", "greedy", "gold", 2), 1.5, "runs[0].per_post.greedy.gold[2]: 1.5 is greater than the maximum of 1"),
    (("runs", 0, "per_post", "sampled", "sft_gold"), [], "runs[0].per_post.sampled.sft_gold: 0 item(s); expected at least 1"),
])
def test_each_schema_rule_fails_with_the_field_the_value_and_the_expectation(valid_submission, path, value, expected):
    set_at(valid_submission, path, value)
    assert_one_problem(valid_submission, expected)


@pytest.mark.parametrize(("count", "expected"), [
    (2, "runs: 2 item(s); expected at least 3"),
    (101, "runs: 101 items; expected at most 100"),
])
def test_three_to_a_hundred_runs(valid_submission, count, expected):
    run = valid_submission["runs"][0]
    valid_submission["runs"] = [dict(copy.deepcopy(run), seed=seed) for seed in range(count)]
    assert_one_problem(valid_submission, expected)


def test_every_schema_error_is_reported_and_long_lists_are_capped(valid_submission):
    valid_submission["runs"][0]["metrics"]["sampled"]["gold"] = 2
    valid_submission["runs"][1]["metrics"]["greedy"]["bleu"] = -1
    del valid_submission["hardware"]
    assert problems_of(valid_submission) == [
        "(top level): 'hardware' is a required property",
        "runs[0].metrics.sampled.gold: 2 is greater than the maximum of 1",
        "runs[1].metrics.greedy.bleu: -1 is less than the minimum of 0",
    ]
    run = valid_submission["runs"][0]
    valid_submission["runs"] = [dict(copy.deepcopy(run), seed=seed) for seed in range(10)]
    for run in valid_submission["runs"]:
        run["metrics"]["sampled"] = {key: -5000 for key in METRIC_RANGES} | {"extra": 0}  # 13 + 1 problems a run
    problems = problems_of(valid_submission)
    assert len(problems) == MAX_PROBLEMS + 1 and problems[-1].startswith("... and ") and problems[-1].endswith(" more problems")


def test_a_huge_bad_value_is_shown_cut_short(valid_submission):
    valid_submission["agent"] = ["x" * 10_000] * 50
    (problem,) = problems_of(valid_submission)
    assert problem.startswith("agent: expected an object, got the array [") and len(problem) < 200


# Semantics --------------------------------------------------------------------------------
def test_an_env_outside_the_suite_is_rejected(valid_submission):
    valid_submission["env_id"] = "CartPole-v1"
    from rlhf_gym.envs import SUITE

    suite = ", ".join(env.env_id for env in SUITE)
    assert "RLHF-Summarize-v0" in suite
    assert_one_problem(valid_submission, 'env_id: "CartPole-v1" is not an env of the suite', f"expected one of: {suite}")


def test_an_env_without_a_protocol_is_rejected(valid_submission, monkeypatch):
    def no_protocol(env_id):
        raise KeyError(f"env {env_id!r} has no leaderboard protocol; protocols exist for: ")

    monkeypatch.setattr(validate_module, "get_protocol", no_protocol)
    assert_one_problem(valid_submission, 'env_id: "RLHF-Summarize-v0" has no leaderboard protocol')


def test_a_protocol_that_fails_to_load_is_a_problem_not_a_crash(valid_submission):
    def broken(env_id):
        raise RuntimeError("the assets are missing")

    problems = validate_submission(json.dumps(valid_submission), protocol_lookup=broken)
    assert problems == ['env_id: cannot load the protocol of "RLHF-Summarize-v0" (RuntimeError: the assets are missing)']


def test_an_explicit_lookup_replaces_get_protocol(valid_submission):
    other = type("P", (), {"env_id": "RLHF-Summarize-v0", "version": "v9", "hash": "sha256:" + "f" * 64})()
    problems = validate_submission(json.dumps(valid_submission), protocol_lookup=lambda env_id: other)
    assert [p.split(":")[0] for p in problems] == ["protocol_version", "protocol_hash"]


def test_a_stale_protocol_hash_names_both_hashes(valid_submission, leaderboard_protocol):
    stale = "sha256:" + "e" * 64
    valid_submission["protocol_hash"] = stale
    problem = assert_one_problem(valid_submission, "protocol_hash: ", stale, leaderboard_protocol.hash, "RLHF-Summarize-v0")
    assert problem.index(stale) < problem.index(leaderboard_protocol.hash)


def test_a_stale_protocol_version_names_both_versions(valid_submission, leaderboard_protocol):
    valid_submission["protocol_version"] = "summarize-test-v0"
    assert_one_problem(valid_submission, 'protocol_version: "summarize-test-v0"', f'"{leaderboard_protocol.version}"')


def test_seeds_must_be_distinct(valid_submission):
    valid_submission["runs"][2]["seed"] = 0
    assert_one_problem(valid_submission, "runs[2].seed: 0 repeats the seed of runs[0]", "distinct")


def test_integers_are_written_as_integers(valid_submission):
    valid_submission["runs"][1]["seed"] = 1.0
    valid_submission["training_env_steps"] = 2e4
    assert problems_of(valid_submission) == [
        "training_env_steps: 20000.0 must be written as an integer (20000), without a decimal point or exponent",
        "runs[1].seed: 1.0 must be written as an integer (1), without a decimal point or exponent",
    ]


@pytest.mark.parametrize("date", ["2026-02-29", "2026-04-31", "2025-02-30"])
def test_the_date_is_a_calendar_date(valid_submission, date):
    valid_submission["date"] = date
    assert_one_problem(valid_submission, f'date: "{date}" is not a calendar date', "YYYY-MM-DD")


def test_semantics_alone_count_runs_and_reject_non_finite_numbers():
    # Unreachable through the schema (minItems, and the parser rejects NaN), checked anyway.
    value = {"runs": [{"seed": 0, "metrics": {"sampled": {"gold": math.nan}}}, {"seed": 1}], "x": [math.inf, -math.inf]}
    problems = semantic_problems(value, protocol_lookup=lambda env_id: None)
    assert "runs: 2 run(s); a submission reports at least 3 runs (distinct seeds)" in problems
    assert "runs[0].metrics.sampled.gold: NaN is not a finite number" in problems
    assert "x[0]: Infinity is not a finite number" in problems and "x[1]: -Infinity is not a finite number" in problems
    assert semantic_problems([1, 2]) == ["(top level): a submission must be a JSON object {...}, got an array"]


def test_a_version_1_file_gets_one_problem_that_says_how_to_regenerate_it(valid_submission):
    valid_submission["schema_version"] = 1
    for run in valid_submission["runs"]:
        del run["per_post"], run["training_command"]
    assert_one_problem(valid_submission, "schema_version: 1 is the retired format", "rlhf-gym evaluate ... --submission FILE")


REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(("policy", "revision"), [
    ("../checkpoints/ppo/seed0", None),
    ("./owner/name", None),  # a local folder that would read as a hub id
    ("runs/ppo/seed0/final_policy", None),
    ("EleutherAI/pythia-160m", REVISION),
    ("best-of-16:../../envs/summarize/assets/sft_policy", None),
    ("best-of-4:owner/name", REVISION),
])
def test_every_accepted_policy_form_passes(valid_submission, policy, revision):
    valid_submission["runs"][1]["policy"] = policy
    if revision:
        valid_submission["runs"][1]["revision"] = revision
    assert problems_of(valid_submission) == []


@pytest.mark.parametrize(("policy", "revision", "expected"), [
    ("EleutherAI/pythia-160m", None, 'runs[1].policy: "EleutherAI/pythia-160m" reads as a hub id owner/name without "revision"'),
    ("best-of-4:owner/name", None, 'runs[1].policy: "owner/name" reads as a hub id owner/name without "revision"'),
    ("../checkpoints/ppo/seed0", REVISION, 'runs[1].policy: "../checkpoints/ppo/seed0" is no hub id owner/name, yet the run has'),
    ("/home/me/runs/ppo", None, "runs[1].policy: '/home/me/runs/ppo' is absolute; a local path is relative to the submission file"),
    ("C:/runs/ppo", None, "is absolute"),
    ("~/runs/ppo", None, "is absolute"),
    ("..\\checkpoints\\ppo", None, "has backslashes; write a local path with /"),
    ("best-of-x:../sft", None, "runs[1].policy: policy 'best-of-x:../sft': expected best-of-N:PATH with a whole number N >= 1"),
    ("best-of-0:../sft", None, "expected best-of-N:PATH"),
    ("best-of-4", None, "expected best-of-N:PATH"),
])
def test_a_policy_in_no_accepted_form_is_rejected(valid_submission, policy, revision, expected):
    valid_submission["runs"][1]["policy"] = policy
    if revision:
        valid_submission["runs"][1]["revision"] = revision
    assert_one_problem(valid_submission, expected)


def test_an_owner_name_folder_next_to_the_file_is_a_local_path(valid_submission, tmp_path):
    valid_submission["runs"][0]["policy"] = "mine/seed0"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(valid_submission))
    (problem,) = validate_submission(path)
    assert problem.startswith('runs[0].policy: "mine/seed0" reads as a hub id owner/name without "revision"')
    (tmp_path / "mine" / "seed0").mkdir(parents=True)
    assert validate_submission(path) == []  # the folder beside the submission decides
    assert validate_submission(path.read_text(), base_dir=tmp_path) == []
    assert len(validate_submission(path.read_text())) == 1  # text alone has no folder to look in


@pytest.mark.parametrize("name", ["final_policy", "policy", "checkpoint", "Checkpoint-500", "model", "seed0", "final-policy_2", "  "])
def test_an_agent_named_like_a_checkpoint_folder_is_rejected(valid_submission, name):
    valid_submission["agent"]["name"] = name
    expected = "agent.name: empty" if not name.strip() else f'agent.name: "{name}" is the name of a checkpoint folder, not of an agent'
    assert_one_problem(valid_submission, expected)


@pytest.mark.parametrize("command", [None, "", "   "])
def test_training_steps_need_every_runs_training_command(valid_submission, command):
    valid_submission["runs"][2]["training_command"] = command
    assert_one_problem(valid_submission, "runs[2].training_command: ", "training_env_steps is 20000, so every run needs the exact")


def test_zero_training_steps_need_null_commands(valid_submission):
    valid_submission["training_env_steps"] = 0
    valid_submission["runs"][0]["training_command"] = None
    valid_submission["runs"][1]["training_command"] = None
    assert_one_problem(valid_submission, "runs[2].training_command: ", "training_env_steps is 0 (a policy that was not trained)",
                       "so the command must be null")


def test_per_post_arrays_have_one_score_per_post_of_the_protocol(valid_submission, leaderboard_protocol):
    scores = valid_submission["runs"][1]["per_post"]["greedy"]
    scores["gold"].append(0.52)
    scores["sft_gold"].append(0.45)  # a fifth post at the means: only the count is wrong
    assert problems_of(valid_submission) == [
        f"runs[1].per_post.greedy.gold: 5 scores; expected one per test post of the protocol ({leaderboard_protocol.posts})"
    ]
    valid_submission["runs"][1]["per_post"]["greedy"]["gold"].pop()
    assert_one_problem(valid_submission, "runs[1].per_post.greedy.sft_gold: 5 scores for 4 in gold; expected one per post in both")


@pytest.mark.parametrize(("key", "index", "delta", "metric"), [
    ("gold", 0, 0.01, "metrics.sampled.gold is 0.52"),  # the mean of gold moves by 0.0025: gold and gold_change disagree
    ("sft_gold", 3, -0.01, "metrics.sampled.gold_change is 0.07"),
])
def test_per_post_scores_must_average_to_the_metrics(valid_submission, key, index, delta, metric):
    valid_submission["runs"][0]["per_post"]["sampled"][key][index] += delta
    problems = problems_of(valid_submission)
    assert problems and all(p.startswith("runs[0].per_post.sampled: the mean of ") for p in problems), problems
    assert any(metric in p for p in problems) and "at most 1e-05" in problems[0]


def test_per_post_means_within_rounding_pass(valid_submission):
    valid_submission["runs"][0]["per_post"]["sampled"]["gold"][0] += 4e-6  # the mean moves by 1e-6: rounding, not a lie
    assert problems_of(valid_submission) == []


# The protocol's metric set --------------------------------------------------------------
GOLD_ONLY = ("gold", "gold_change", "gold_change_sem", "win_rate")


@pytest.mark.parametrize("decoding", ["sampled", "greedy"])
@pytest.mark.parametrize("key", [*GOLD_ONLY, "rouge_l", "bleu"])
def test_a_metric_of_the_protocol_missing_from_a_run_is_rejected(valid_submission, key, decoding):
    """The schema allows a run without gold (an env may have no gold judge); a gold-judge protocol does not."""
    del valid_submission["runs"][1]["metrics"][decoding][key]
    needs = "a gold judge and reference responses" if key == "win_rate" else "reference responses" if key in ("rouge_l", "bleu") \
        else "a gold judge"
    assert_one_problem(valid_submission, f"runs[1].metrics.{decoding}: '{key}' is a required property of protocol "
                                         f'"summarize-test-v1", whose env has {needs}')


def _without_gold(protocol: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Patch in a stand-in of ``protocol`` whose env has no gold judge (references kept)."""
    no_gold = copy.copy(protocol)
    no_gold.version, no_gold.metrics = "nogold-test-v1", metric_set(gold_judge=False, references=True)
    monkeypatch.setattr(validate_module, "get_protocol", lambda env_id: no_gold)
    return no_gold


def _proxy_submission(submission: dict[str, Any]) -> dict[str, Any]:
    """``submission`` as an env without a gold judge writes it: no gold metrics, the proxy's per-post pair."""
    submission["protocol_version"] = "nogold-test-v1"
    for run in submission["runs"]:
        for decoding in ("sampled", "greedy"):
            for key in GOLD_ONLY:
                del run["metrics"][decoding][key]
            proxy = run["metrics"][decoding]["proxy_reward"]
            spread = [0.5, -0.5, 0.25, -0.25]  # mean 0: the proxy's mean is the metric
            run["per_post"][decoding] = {"proxy": [proxy + d for d in spread], "sft_proxy": [proxy - 1.0 + d for d in spread]}
    return submission


def test_a_protocol_without_a_gold_judge_takes_the_proxys_per_post_pair_and_no_gold(valid_submission, leaderboard_protocol,
                                                                                     monkeypatch):
    _without_gold(leaderboard_protocol, monkeypatch)
    problems = problems_of(valid_submission)  # written as if the env had a gold judge
    for key in GOLD_ONLY:
        assert f'runs[0].metrics.sampled.{key}: protocol "nogold-test-v1" has no {key}: it needs a gold judge' in "\n".join(problems)
    assert 'runs[0].per_post.sampled: \'proxy\' is a required property of protocol "nogold-test-v1", which ranks by proxy_reward' \
        in problems
    assert 'runs[0].per_post.sampled.gold: protocol "nogold-test-v1" records proxy and sft_proxy (it ranks by proxy_reward), ' \
        "not gold" in problems
    proxy = _proxy_submission(valid_submission)
    assert problems_of(proxy) == []
    proxy["runs"][2]["per_post"]["greedy"]["proxy"][0] += 0.4  # the mean moves by 0.1: no longer the metric's
    assert_one_problem(proxy, "runs[2].per_post.greedy: the mean of proxy is", "but metrics.greedy.proxy_reward is 1.35")


def test_a_protocol_without_references_refuses_reference_metrics(valid_submission, leaderboard_protocol, monkeypatch):
    no_references = copy.copy(leaderboard_protocol)
    no_references.metrics = metric_set(gold_judge=True, references=False)
    monkeypatch.setattr(validate_module, "get_protocol", lambda env_id: no_references)
    problems = problems_of(valid_submission)
    assert len(problems) == 3 * 2 * 3, problems  # win_rate, rouge_l, bleu; two decodings; three runs
    assert 'runs[2].metrics.greedy.bleu: protocol "summarize-test-v1" has no bleu: it needs reference responses, which its ' \
        "env lacks" in problems


# Malformed files --------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "expected"), [
    (b"", "the file is empty"),
    (b" \n\t ", "the file is empty"),
    (b"\x00\xff\xfe", "not valid UTF-8: byte 0xff at offset 1"),
    ("{\"hardware\": \"caf\u00e9\"}".encode("latin-1"), "not valid UTF-8: byte 0xe9 at offset 17"),
    ("\ufeff{}".encode(), "byte order mark"),
    ("\ud800{}", "unpaired surrogate"),
    (b'{"a": 1', "invalid JSON at line 1, column 8"),
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b'{"a": Infinity}', "Infinity is not a JSON number"),
    (b'{"a": [-Infinity]}', "-Infinity is not a JSON number"),
    (b'{"a": 1e999}', "the number 1e999 is too large for a 64-bit float"),
    (b'{"a": -1e400}', "the number -1e400 is too large"),
    (b'{"a": 1, "a": 2}', 'duplicate key "a"'),
    (b'{"runs": [{"seed": 0, "seed": 1}]}', 'duplicate key "seed"'),
    (b"[" * 100_000, f"more than {MAX_DEPTH} levels deep"),
    (b'{"a":' * 100_000, f"more than {MAX_DEPTH} levels deep"),
    (b"[" * 5_000 + b"]" * 5_000, f"more than {MAX_DEPTH} levels deep"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"nested {MAX_DEPTH + 1} levels deep; at most {MAX_DEPTH}"),
    (b"1" * 5_000, "invalid JSON: "),  # longer than Python's integer digit limit
    (b"[1, 2]", "(top level): a submission must be a JSON object {...}, got an array"),
    (b'"submission"', 'got a string ("submission")'),
    (b"3.5", "got a number (3.5)"),
    (b"null", "got the literal null"),
    (b"true", "got the literal true"),
    (b"{} {}", "invalid JSON at line 1, column 4: Extra data"),
    (b"{'a': 1}", "invalid JSON at line 1, column 2"),
    (b"{}" + b" " * MAX_BYTES, f"at most {MAX_BYTES} bytes"),
    (1234, "cannot validate a int"),
])
def test_malformed_input_gives_one_clear_problem(data, expected):
    problems = validate_submission(data)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize("cut", [1, 10, 100, -200, -2, -1])
def test_a_truncated_submission_is_invalid_json(valid_submission, cut):
    text = json.dumps(valid_submission, indent=1)
    (problem,) = validate_submission(text[:cut])
    assert problem.startswith("invalid JSON at line ")


def test_a_huge_file_is_rejected_by_size_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.json"
    with path.open("wb") as file:
        file.truncate(64 * MAX_BYTES)  # sparse: 64 MiB without writing them
    monkeypatch.setattr(Path, "open", lambda *args, **kwargs: pytest.fail("opened a file over the size limit"))
    monkeypatch.setattr(Path, "read_bytes", lambda *args, **kwargs: pytest.fail("read a file over the size limit"))
    started = time.perf_counter()
    limit = f"a submission may have at most {MAX_BYTES} bytes ({MAX_BYTES // 1024} KiB)"
    assert validate_submission(path) == [f"too large: {64 * MAX_BYTES} bytes; {limit}"]
    assert time.perf_counter() - started < 1.0


def test_a_file_that_lies_about_its_size_is_cut_at_the_limit(tmp_path):
    path = tmp_path / "grows.json"
    path.write_bytes(b"{}" + b" " * MAX_BYTES)
    assert validate_submission(path)[0].startswith(f"too large: {MAX_BYTES + 2} bytes")
    assert validate_submission(Path("/dev/zero"))[0].startswith(f"too large: more than {MAX_BYTES} bytes")  # size 0, endless


def test_missing_files_and_folders_are_problems(tmp_path):
    assert validate_submission(tmp_path / "nope.json") == ["cannot read the file: No such file or directory"]
    assert validate_submission(tmp_path) == ["cannot read the file: Is a directory"]


def test_validate_files_fails_bad_files_without_a_traceback(valid_submission, tmp_path, capsys):
    good, bad, binary = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "binary.json"
    good.write_text(json.dumps(valid_submission))
    valid_submission["runs"][2]["metrics"]["sampled"]["gold"] = 1.5
    valid_submission["runs"][1]["seed"] = 0
    bad.write_text(json.dumps(valid_submission))
    binary.write_bytes(b"\x00\xff\xfe")
    assert validate_files([good, bad, binary, tmp_path / "missing.json", tmp_path]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"OK {good}",
        f"FAIL {bad}",
        "  runs[2].metrics.sampled.gold: 1.5 is greater than the maximum of 1",
        "  runs[1].seed: 0 repeats the seed of runs[0]; every run needs a distinct seed",
        f"FAIL {binary}",
        "  not valid UTF-8: byte 0xff at offset 1 (invalid start byte); a submission is UTF-8 JSON text",
        f"FAIL {tmp_path / 'missing.json'}",
        "  cannot read the file: No such file or directory",
        f"FAIL {tmp_path}",
        "  cannot read the file: Is a directory",
    ]
    assert "Traceback" not in captured.out + captured.err
    assert validate_files([]) == 1 and capsys.readouterr().out == "FAIL no submission file given\n"


def test_validate_files_as_a_script(valid_submission, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bad.json"
    path.write_bytes(b"[" * 100_000)
    script = Path(validate_module.__file__)
    result = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    expected = f"  invalid JSON: nested too deeply (arrays/objects more than {MAX_DEPTH} levels deep)"
    assert result.stdout.splitlines() == [f"FAIL {path}", expected]


# Fuzzing ----------------------------------------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(data=st.binary(max_size=2_000))
def test_fuzz_arbitrary_bytes_never_raise(data):
    problems = validate_submission(data)
    assert isinstance(problems, list) and problems and all(isinstance(p, str) and "internal error" not in p for p in problems)


@FUZZ
@given(text=st.text(max_size=2_000))
def test_fuzz_arbitrary_text_never_raises(text):
    problems = validate_submission(text)
    assert isinstance(problems, list) and problems and all(isinstance(p, str) and "internal error" not in p for p in problems)


@FUZZ
@given(value=JSON_VALUES)
def test_fuzz_arbitrary_json_never_raises(leaderboard_protocol, value):
    problems = validate_submission(json.dumps(value))
    assert isinstance(problems, list) and problems and all("internal error" not in p for p in problems)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path to a value inside ``value`` (not the root)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _containers(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The path of every object inside ``value``, the root included."""
    return [path for path in [prefix, *_paths(value, prefix)] if isinstance(_at(value, path), dict)]


def _at(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


@FUZZ
@given(data=st.data())
def test_fuzz_mutations_of_a_valid_submission_are_valid_or_reported(valid_submission, data):
    submission = copy.deepcopy(valid_submission)
    kind = data.draw(st.sampled_from(["delete", "set", "add"]), label="mutation")
    if kind == "delete":
        path = data.draw(st.sampled_from(_paths(submission)), label="path")
        parent = _at(submission, path[:-1])
        del parent[path[-1]]
    elif kind == "set":
        path = data.draw(st.sampled_from(_paths(submission)), label="path")
        set_at(submission, path, data.draw(JSON_VALUES, label="value"))
    else:
        path = data.draw(st.sampled_from(_containers(submission)), label="object")
        key = data.draw(st.text(max_size=10).filter(lambda k: k not in _at(submission, path)), label="key")
        _at(submission, path)[key] = data.draw(JSON_VALUES, label="value")
    problems = validate_submission(json.dumps(submission))
    assert isinstance(problems, list) and all(isinstance(p, str) and "internal error" not in p for p in problems)
    if kind == "delete" and path != ("agent", "description"):
        assert problems, path  # every other field is required, and a deleted run leaves 2
    if kind == "add":  # an unknown key, unless the value is NaN or infinite, which the parser rejects first
        assert any("was unexpected" in p for p in problems) or problems[0].startswith("invalid JSON: "), problems
    if problems == []:
        assert kind == "set" or path == ("agent", "description")

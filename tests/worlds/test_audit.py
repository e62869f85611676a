"""The headroom audit (`rlhf_gym.worlds.audit`, ``rlhf-gym audit ENV``) on toy Summarize assets.

The assets are built once per module (about 10 s, the build's own audit included); each
audit runs on a few valid prompts with 64 samples each. Those tests are in the slow tier.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlhf_gym.envs.summarize.definition import SummarizeWorld
from rlhf_gym.worlds import AuditTargets, Task
from rlhf_gym.worlds.audit import (
    BEST_OF_N,
    SAMPLES_PER_PROMPT,
    Decoded,
    best_of_n,
    check_targets,
    decision_figures,
    render_audit,
    run_audit,
)
from rlhf_gym.worlds.build import build_assets

WORLD = SummarizeWorld()  # the first Summarize world, whose judge and perturbations the deep world reuses

PROMPTS = 3
# A toy build (~10 s) and a few audits: the slow tier. The estimators and the CLI's input
# checks are tested without assets, in the fast tier.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def toy_assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("audit") / "assets"
    card = build_assets(WORLD, WORLD.build_config(toy=True), out, progress=False)
    return out, card


@pytest.fixture(scope="module")
def toy_task(toy_assets: tuple[Path, dict[str, Any]]) -> Task:
    return Task.from_world(WORLD, toy_assets[0])


@pytest.fixture(scope="module")
def toy_audit(toy_task: Task) -> dict[str, Any]:
    return run_audit(toy_task, prompts=PROMPTS, seed=0, progress=False)


def protocol_row(audit: dict[str, Any]) -> dict[str, Any]:
    (row,) = [r for r in audit["decodings"] if r["protocol"]]
    return row


@slow
def test_decodings_cover_greedy_to_one_with_the_protocol_pool(toy_task: Task, toy_audit: dict[str, Any]) -> None:
    rows = toy_audit["decodings"]
    assert [r["temperature"] for r in rows] == [0.0, 0.3, 0.7, 1.0]
    assert protocol_row(toy_audit)["temperature"] == toy_task.temperature
    assert protocol_row(toy_audit)["samples_per_prompt"] == SAMPLES_PER_PROMPT
    for row in rows:
        assert 0.0 <= row["gold"] <= 1.0 and row["gold_se"] >= 0.0 and math.isfinite(row["proxy"]), row


@slow
def test_best_of_n_by_gold_grows_with_n_and_beats_sampling_and_the_proxy(toy_audit: dict[str, Any]) -> None:
    sampled = protocol_row(toy_audit)["gold"]
    rows = toy_audit["best_of_n"]
    assert [r["n"] for r in rows] == list(BEST_OF_N)
    by_gold = [r["by_gold"]["gold"] for r in rows]
    assert by_gold[0] >= sampled - 1e-12
    assert all(b >= a - 1e-12 for a, b in zip(by_gold, by_gold[1:])), by_gold
    for row in rows:
        assert row["by_gold"]["gold"] >= row["by_proxy"]["gold"] - 1e-12, row
        assert row["by_proxy"]["proxy"] >= row["by_gold"]["proxy"] - 1e-12, row  # each judge wins on its own score
        assert row["kl"] == pytest.approx(math.log(row["n"]) - (row["n"] - 1) / row["n"], abs=1e-12)
        closed = (row["by_gold"]["gold"] - sampled) / (1 - sampled)
        assert row["by_gold"]["headroom_closed"] == pytest.approx(closed)
        assert 0.0 <= row["by_gold"]["headroom_closed"] <= 1.0


def test_best_of_n_averages_the_disjoint_groups_of_a_pool() -> None:
    rng = np.random.default_rng(0)
    pick, values = rng.normal(size=(5, 64)), rng.random((5, 64))
    for n in BEST_OF_N:
        expected = [
            np.mean([values[p, g * n + int(np.argmax(pick[p, g * n : (g + 1) * n]))] for g in range(64 // n)])
            for p in range(5)
        ]
        np.testing.assert_allclose(best_of_n(pick, values, n), expected)
    with pytest.raises(ValueError, match="dividing"):
        best_of_n(pick, values, 5)


@slow
def test_references_are_scored_by_the_gold_judge(toy_task: Task, toy_audit: dict[str, Any]) -> None:
    samples = WORLD.samples("valid", PROMPTS)
    gold = WORLD.gold_scores([s.record for s in samples], [s.reference for s in samples])
    assert toy_audit["references"]["gold"] == pytest.approx(float(gold.mean()))
    assert toy_audit["references"]["share_gold_at_least_0.95"] == pytest.approx(float(np.mean(gold >= 0.95)))


@slow
def test_decisions_compare_greedy_with_the_gold_judges_best(toy_audit: dict[str, Any]) -> None:
    (name,) = toy_audit["decisions"]
    figures = toy_audit["decisions"][name]
    assert figures["best_option"] == WORLD.best_decisions(WORLD.generate(0).record)[name]
    assert 0.0 <= figures["greedy_not_best"] <= 1.0 and 0.0 <= figures["samples_best"] <= 1.0


def test_decision_figures_count_prompts_and_samples() -> None:
    samples = WORLD.samples("valid", 2)
    best = [s.reference for s in samples]  # the reference is written in the best style
    vague = "I have a problem, what should I do?"  # no fact of the post: not the best style
    items = [_prompt(s) for s in samples]
    greedy = Decoded(0.0, [[best[0]], [vague]], None, np.zeros((2, 1)))
    pool = Decoded(0.7, [[best[0], vague, vague, vague], [best[1], best[1], vague, vague]], None, np.zeros((2, 4)))
    figures = decision_figures(WORLD, items, greedy, pool)["writer style"]
    assert WORLD.decisions(samples[0].record, best[0]) == WORLD.best_decisions(samples[0].record)
    assert figures["greedy_not_best"] == 0.5
    assert figures["samples_best"] == 3 / 8


@slow
def test_same_seed_same_audit_other_seed_other_samples(toy_task: Task, toy_audit: dict[str, Any]) -> None:
    before = torch.get_rng_state(), np.random.get_state()[1].copy()
    assert run_audit(toy_task, prompts=PROMPTS, seed=0, progress=False) == toy_audit
    assert torch.equal(torch.get_rng_state(), before[0]) and np.array_equal(np.random.get_state()[1], before[1])
    other = run_audit(toy_task, prompts=PROMPTS, seed=1, progress=False)
    assert other["decodings"][0] == toy_audit["decodings"][0]  # greedy ignores the seed
    assert protocol_row(other)["proxy"] != protocol_row(toy_audit)["proxy"]


@slow
def test_check_targets_flags_a_violated_target(toy_audit: dict[str, Any]) -> None:
    rows = {r["temperature"]: r["gold"] for r in toy_audit["decodings"]}
    gain = max(rows[0.0], rows[0.3]) - rows[0.7]
    checks = check_targets(toy_audit, AuditTargets(max_low_temperature_gain=gain, sft_gold_range=(2.0, 3.0),
                                                   max_best_of_16_closed=1.0, max_reference_gold=1.0))
    passed = {target: ok for target, _value, _limit, ok in checks}
    assert passed == {"greedy gold - T=0.7 gold": True, "T=0.3 gold - T=0.7 gold": True,
                      "best-of-16 by gold: headroom closed": True, "SFT gold at T=0.7 in range": False,
                      "mean reference gold": True}
    tighter = check_targets(toy_audit, AuditTargets(max_low_temperature_gain=gain - 0.01))
    assert [ok for *_, ok in tighter].count(False) == 1  # the larger of the two gains breaks the tighter limit
    assert check_targets(toy_audit, AuditTargets()) == []


@slow
def test_render_audit_is_markdown_tables(toy_audit: dict[str, Any]) -> None:
    lines = render_audit({**toy_audit, "targets": [
        {"target": "mean reference gold", "value": 1.0, "limit": 0.6, "passed": False}
    ]})
    header = lines.index("| SFT decoding | gold | proxy |")
    assert lines[header + 1] == "|---|---|---|"
    assert [line.split(" |")[0] for line in lines[header + 2 : header + 6]] == [
        "| greedy", "| T=0.3", "| T=0.7 (protocol, 64 samples per prompt)", "| T=1.0",
    ]
    for line in lines:  # every row of a table has its header's column count
        if line.startswith("|"):
            assert line.endswith("|"), line
    tables = "\n".join(lines).split("\n\n")
    for table in (t for t in tables if t.startswith("|")):
        assert len({row.count("|") for row in table.splitlines()}) == 1, table
    assert "| mean reference gold | 1.000 | ≤ 0.6 | FAIL |" in lines


@slow
def test_without_a_gold_judge_the_audit_is_proxy_only(toy_task: Task) -> None:
    audit = run_audit(dataclasses.replace(toy_task, gold_judge=None), prompts=2, seed=0, progress=False)
    assert audit["gold_judge"] is False and "no gold judge" in audit["note"]
    assert all("gold" not in row for row in audit["decodings"])
    assert all(set(row) == {"n", "kl", "by_proxy"} and "gold" not in row["by_proxy"] for row in audit["best_of_n"])
    assert "gold" not in audit["references"]
    assert "Note: no gold judge" in "\n".join(render_audit(audit))
    (check,) = check_targets(audit, AuditTargets(sft_gold_range=(0.0, 1.0)))
    assert check[1] is None and check[3] is False  # a gold target cannot pass without gold


@slow
def test_build_puts_the_audit_in_the_card(toy_assets: tuple[Path, dict[str, Any]]) -> None:
    out, card = toy_assets
    assert card["audit"]["prompts"] == WORLD.build_config(toy=True).audit_prompts
    assert json.loads((out / "card.json").read_text())["audit"] == card["audit"]
    assert "## Headroom audit (valid split)" in (out / "card.md").read_text()


@slow
def test_cli_writes_json_and_updates_the_card(toy_assets, tmp_path, monkeypatch, capsys) -> None:
    from rlhf_gym import cli

    folder = tmp_path / "assets"
    shutil.copytree(toy_assets[0], folder)
    card = json.loads((folder / "card.json").read_text())
    del card["audit"]
    (folder / "card.json").write_text(json.dumps(card))
    task = Task.from_world(WORLD, folder)
    monkeypatch.setattr(cli, "get_task", lambda name: task)
    out = tmp_path / "audit.json"
    cli.main(["audit", WORLD.env_id, "--prompts", "2", "--seed", "3", "--json", str(out), "--update-card"])
    written = json.loads(out.read_text())
    assert written["prompts"] == 2 and written["seed"] == 3 and written["seconds"] >= 0
    assert json.loads((folder / "card.json").read_text())["audit"] == {k: v for k, v in written.items() if k != "seconds"}
    assert "## Headroom audit (valid split)" in (folder / "card.md").read_text()
    assert "| SFT decoding | gold | proxy |" in capsys.readouterr().out


def test_cli_unknown_env_is_one_line() -> None:
    from rlhf_gym.cli import main

    with pytest.raises(SystemExit) as error:
        main(["audit", "RLHF-Nope-v0"])
    message = str(error.value.code)
    assert "RLHF-Nope-v0" in message and "\n" not in message


def _prompt(sample):  # the env's view of a generated item, as the task's prompt source makes it
    from rlhf_gym.env.prompts import Prompt

    return Prompt(sample.prompt, sample.id, sample.reference, sample.record)


def test_check_targets_reads_every_decision_and_the_share_of_good_references() -> None:
    audit = {
        "protocol_temperature": 0.7,
        "decodings": [{"temperature": 0.7, "gold": 0.4}],
        "references": {"gold": 0.5, "share_gold_at_least_0.95": 0.03},
        "decisions": {"ask": {"greedy_not_best": 0.8}, "lead": {"greedy_not_best": 0.3}},
    }
    checks = check_targets(audit, AuditTargets(max_good_references=0.02, min_greedy_not_best=0.5))
    assert [(target, ok) for target, _value, _limit, ok in checks] == [
        ("share of references at gold >= 0.95", False),
        ("ask: greedy misses the best option", True),
        ("lead: greedy misses the best option", False),
    ]
    assert "≥ 0.5" in [limit for *_, limit, _ok in checks]
    # A world that exposes no decision cannot pass a per-decision target.
    (missing,) = check_targets({**audit, "decisions": {}}, AuditTargets(min_greedy_not_best=0.5))
    assert missing[3] is False

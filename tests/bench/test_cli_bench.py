"""``rlhf-gym bench``: bad options are one line, parts run in order, failures are recorded, outputs written."""

from __future__ import annotations

import json

import pytest

from rlhf_gym.bench import run as bench_run
from rlhf_gym.bench.report import START
from rlhf_gym.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--parts", "p1,p9"], "rlhf-gym bench: --parts: unknown part(s) p9; choose from p1, p2, p3, p4, memory"),
        (["--parts", "bogus", "memory"], "unknown part(s) bogus"),
        (["--threads", "0"], "--threads must be >= 1, got 0"),
        (["--env", "nope"], "--env: unknown env or task 'nope'"),
        (["--json", "/no/such/folder/x.json"], "--json /no/such/folder/x.json: the folder /no/such/folder does not exist"),
        (["--doc", "/no/such/folder/p.md"], "--doc /no/such/folder/p.md: the folder /no/such/folder does not exist"),
        (["--device", "nonsense"], "is not a torch device"),
    ],
)
def test_a_bad_option_is_one_line(args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    text = str(exit_info.value.code)
    assert message in text and "\n" not in text


def test_bench_is_listed_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "bench" in capsys.readouterr().out


def _fake(name: str, calls: list[str]):
    def runner(ctx):
        calls.append(name)
        return {"headline": [{"figure": f"{name} figure", "ratio": 2.0, "value": "2.00x", "goal": ">= 1x", "met": True, "detail": ""}]}

    return runner


def test_a_run_writes_the_json_and_the_page_and_records_failures(tmp_path, monkeypatch, capsys):
    calls: list[str] = []

    def broken(ctx):
        calls.append("p2")
        raise RuntimeError("a part that breaks")

    runners = {**bench_run.RUNNERS, "p1": _fake("p1", calls), "p2": broken, "memory": _fake("memory", calls)}
    monkeypatch.setattr(bench_run, "RUNNERS", runners)
    out, page = tmp_path / "bench.json", tmp_path / "performance.md"
    main(["bench", "--quick", "--parts", "memory", "p2,p1", "p4", "--json", str(out), "--doc", str(page), "--threads", "1"])
    assert calls == ["p1", "p2", "memory"]  # run order, whatever order they were given in
    results = json.loads(out.read_text())
    assert results["command"] == "rlhf-gym bench --quick --device cpu --threads 1 --parts p1 p2 p4 memory"
    assert results["parts"]["p2"]["error"] == "RuntimeError: a part that breaks" and "Traceback" in results["parts"]["p2"]["traceback"]
    assert results["parts"]["p4"] == {"skipped": "P4 runs only without --quick"}
    assert results["machine"]["cores"] >= 1 and results["parts"]["p1"]["seconds"] >= 0
    section = page.read_text().split(START)[1]
    assert "p1 figure" in section and "a part that breaks" in section and "memory figure" in section
    printed = capsys.readouterr().out
    assert "p1 figure: 2.00x  (goal >= 1x: met)" in printed and "p2: not measured: RuntimeError: a part that breaks" in printed


def test_a_missing_training_module_is_recorded_not_raised(monkeypatch):
    real_import = bench_run.importlib.import_module

    def import_module(name, *args):
        if name in ("rlhf_gym.bench.training", "rlhf_gym.bench.learning"):
            raise ModuleNotFoundError(f"No module named '{name}'")
        return real_import(name, *args)

    monkeypatch.setattr(bench_run.importlib, "import_module", import_module)
    results = bench_run.run(False, "cpu", None, 1, ["p3", "p4"], doc_path=None, log=lambda line: None)
    assert results["parts"]["p3"]["error"] == "ModuleNotFoundError: No module named 'rlhf_gym.bench.training'"
    assert results["parts"]["p4"]["error"].startswith("ModuleNotFoundError")


def test_no_doc_leaves_the_page_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_run, "RUNNERS", {**bench_run.RUNNERS, "p1": _fake("p1", [])})
    monkeypatch.chdir(tmp_path)  # the default page would be docs/performance.md here; the folder does not exist
    main(["bench", "--parts", "p1", "--no-doc"])
    assert not (tmp_path / "docs").exists()


def test_training_and_learning_results_become_rows():
    p3 = {"goal": 1.5, "algorithms": {"ppo": {"ratio": 1.8, "meets_goal": True, "ours_seconds": 1.0, "trl_seconds": 1.8,
                                              "trl_version": "1.12.0"}}}
    (row,) = bench_run.training_headline(p3)
    assert (row["value"], row["goal"], row["met"]) == ("1.80x", ">= 1.5x", True) and "TRL 1.12.0" in row["detail"]
    p4 = {"png": "x.png", "trainers": {"ours-ppo": {"points": [{"seconds": 0, "gold_change": 0, "sem": 0, "posts": 128},
                                                              {"seconds": 20.2, "gold_change": 0.0123, "sem": 0.004, "posts": 128}]}}}
    (row,) = bench_run.learning_headline(p4)
    assert row["value"] == "+0.012 ± 0.004" and "after 20 s" in row["figure"]

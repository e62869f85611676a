"""The two-revision env step benchmark: each worker runs its own worktree's code; a tiny run of both sides."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_a_tiny_run_compares_two_worktrees_and_cleans_up(load_script, tmp_path, capsys, monkeypatch):
    revisions = load_script("env_step_revisions")
    monkeypatch.chdir(REPO)
    out = tmp_path / "revisions.json"
    revisions.main(revisions.Config(before="HEAD", after="HEAD", num_envs=4, steps=5, pairs=2, warmup=0, threads=1,
                                    pool_size=16, json_out=str(out)))
    result = json.loads(out.read_text())
    assert len(result["ratios"]) == 2 and result["ratio"] > 0
    assert [s["work"] for s in result["a_samples"]] == [20.0, 20.0]  # steps x N sub-env steps per run
    assert "ratio" in capsys.readouterr().out
    worktrees = subprocess.check_output(["git", "-C", str(REPO), "worktree", "list"], text=True)
    assert "env-step-revisions-" not in worktrees  # removed after the run

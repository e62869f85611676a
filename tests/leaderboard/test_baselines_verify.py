"""The committed baseline rows verify from a fresh clone: their checkpoints ship in the repository.

Every trained baseline of ``leaderboard/submissions`` names a checkpoint under
``leaderboard/checkpoints`` (fp16 safetensors, relative to the submission file), and records
the command that trained it. The slow test copies exactly the files git tracks into a new
folder, as a clone would hold them, and runs ``rlhf-gym leaderboard verify`` there from
another working directory: nothing outside the repository (no ``runs/`` folder, no hub) may
be needed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_gym.leaderboard.policy_spec import parse_policy

REPO = Path(__file__).resolve().parents[2]
SUBMISSIONS = sorted((REPO / "leaderboard" / "submissions").glob("*.json"))


def _tracked_files() -> list[str]:
    """The repository's files as a clone holds them (``git ls-files``); skip outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell which files a clone holds")
    return [name for name in out.decode().split("\0") if name]


def test_every_baseline_checkpoint_is_tracked_and_inside_the_repository():
    """Each run's checkpoint resolves, relative to its submission, to committed files in the repository."""
    tracked = set(_tracked_files())
    for path in SUBMISSIONS:
        data = json.loads(path.read_text())
        for index, run in enumerate(data["runs"]):
            assert "revision" not in run, f"{path.name} runs[{index}]: a baseline must ship its checkpoint, not name a hub id"
            folder = (path.parent / parse_policy(run["policy"])[1]).resolve()
            relative = folder.relative_to(REPO).as_posix()  # raises if the checkpoint lies outside the repository
            assert f"{relative}/model.safetensors" in tracked, f"{path.name} runs[{index}]: {relative} is not committed"
            assert f"{relative}/config.json" in tracked, f"{path.name} runs[{index}]: {relative} is not committed"
            if data["training_env_steps"] > 0:
                assert run["training_command"].startswith("rlhf-gym train "), f"{path.name} runs[{index}]"


@pytest.mark.slow
def test_a_trained_baseline_verifies_from_a_clean_copy(tmp_path):
    clone = tmp_path / "clone"
    for name in _tracked_files():
        source = REPO / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [sys.executable, "-m", "rlhf_gym.cli", "leaderboard", "verify",
               str(clone / "leaderboard" / "submissions" / "ppo.json"), "--runs", "0", "--threads", "1"]
    result = subprocess.run(command, cwd=elsewhere, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "VERIFIED" in output, output
    assert "gold" in output  # the per-metric deviations are printed on success too

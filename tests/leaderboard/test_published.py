"""The committed leaderboard: its submissions validate, and its table and page are a rebuild of them."""

from __future__ import annotations

import shutil
from pathlib import Path

from rlhf_gym.leaderboard.build import BEGIN_MARKER, END_MARKER, build
from rlhf_gym.leaderboard.validate import validate_submission

LEADERBOARD = Path(__file__).resolve().parents[2] / "leaderboard"
SUBMISSIONS = sorted((LEADERBOARD / "submissions").glob("*.json"))


def test_the_baseline_submissions_are_there_and_valid():
    names = {path.stem for path in SUBMISSIONS}
    assert {"sft", "best-of-4", "best-of-16", "ppo", "rloo", "grpo"} <= names, names
    for path in SUBMISSIONS:
        assert validate_submission(path) == [], path.name


def test_the_published_table_and_page_are_up_to_date(tmp_path):
    """A rebuild into a copy of the committed README.md (its hand-written text kept) gives the committed files."""
    readme = (LEADERBOARD / "README.md").read_text(encoding="utf-8")
    assert readme.count(BEGIN_MARKER) == readme.count(END_MARKER) == 1
    shutil.copyfile(LEADERBOARD / "README.md", tmp_path / "README.md")
    build(LEADERBOARD / "submissions", tmp_path)
    for name in ("README.md", "index.html"):
        rebuilt = (tmp_path / name).read_text(encoding="utf-8")
        assert rebuilt == (LEADERBOARD / name).read_text(encoding="utf-8"), f"rebuild {name}: rlhf-gym leaderboard build"
    assert "Built from leaderboard/submissions/\\*.json by `rlhf-gym leaderboard build`" in readme

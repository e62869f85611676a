"""The committed leaderboard: its submissions validate, and the table and page are rebuilt from them."""

from __future__ import annotations

from pathlib import Path

from rlhf_gym.leaderboard.build import build
from rlhf_gym.leaderboard.validate import validate_submission

LEADERBOARD = Path(__file__).resolve().parents[2] / "leaderboard"
SUBMISSIONS = sorted((LEADERBOARD / "submissions").glob("*.json"))


def test_the_baseline_submissions_are_there_and_valid():
    names = {path.stem for path in SUBMISSIONS}
    assert {"sft", "best-of-4", "best-of-16", "ppo", "rloo", "grpo"} <= names, names
    for path in SUBMISSIONS:
        assert validate_submission(path) == [], path.name


def test_the_published_table_and_page_are_up_to_date(tmp_path):
    build(LEADERBOARD / "submissions", tmp_path)
    for name in ("README.md", "index.html"):
        assert (tmp_path / name).read_text() == (LEADERBOARD / name).read_text(), f"rebuild {name}: rlhf-gym leaderboard build"

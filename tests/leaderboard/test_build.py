"""`rlhf_gym.leaderboard.build`: the estimators, the Markdown table, the HTML page and its escaping.

The synthetic submissions are chosen so that ranking by the plain mean of gold would give
a different order than ranking by the IQM (one PPO seed is an outlier), and two agent names
are hostile: ``<script>alert(1)</script>`` and one with ``|`` (a Markdown table separator).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlhf_gym.leaderboard import build as lb

ENV = "RLHF-Summarize-v0"
XSS = "<script>alert(1)</script>"
REBUILD = "rlhf-gym leaderboard build"

# file stem -> (agent name, per-run gold, per-run KL, code URL)
AGENTS: dict[str, tuple[str, list[float], list[float], str | None]] = {
    "ppo": ("PPO (rlhf-gym)", [0.61, 0.58, 0.64, 0.10, 0.60], [5.0, 6.0, 5.5, 20.0, 6.2], "https://github.com/x/ppo"),
    "xss": (XSS, [0.55, 0.56, 0.54], [3.0, 3.2, 3.1], None),
    "pipe": ("best|of|n", [0.50, 0.70, 0.52, 0.51], [1.5, 1.7, 1.6, 1.4], None),
    "sft": ("SFT `v0`", [0.45, 0.46, 0.44], [0.0, 0.01, 0.02], None),
}


def _iqm_by_hand(values: list[float]) -> float:
    """The IQM computed independently of the module: sort, drop n // 4 at each end, average."""
    ordered = sorted(values)
    cut = len(ordered) // 4
    kept = ordered[cut : len(ordered) - cut]
    return sum(kept) / len(kept)


def _run_metrics(gold: float, kl: float, i: int) -> dict[str, dict[str, float]]:
    sampled = {
        "gold": gold, "gold_change": round(gold - 0.45, 6), "gold_change_sem": 0.01, "win_rate": min(1.0, gold * 0.8),
        "proxy_reward": 2.0 * gold + 0.1 * i, "kl": kl, "rouge_l": 0.3 + 0.01 * i, "bleu": 10.0 + i, "perplexity": 3.0 + 0.1 * i,
        "distinct_1": 0.6, "distinct_2": 0.85 + 0.01 * i, "response_length": 40.0 + i, "eos_rate": 0.95,
    }
    greedy = {key: value for key, value in sampled.items() if key != "kl"}
    greedy["gold"] = gold + 0.02
    return {"sampled": sampled, "greedy": greedy}


def make_submission(name: str, golds: list[float], kls: list[float], code: str | None = None, env_id: str = ENV) -> dict[str, Any]:
    """A schema-version-1 submission with one run per (gold, KL) pair, seeds 0, 1, ..."""
    return {
        "schema_version": 1,
        "env_id": env_id,
        "protocol_version": "summarize-test-v1",
        "protocol_hash": "sha256:" + "0" * 64,
        "agent": {"name": name, "paper": "https://arxiv.org/abs/2403.17031" if code else None, "code": code},
        "training_env_steps": 20000 if code else 0,
        "hardware": "2 CPU cores",
        "date": "2026-12-01",
        "runs": [
            {"seed": i, "policy": f"runs/{i}/final_policy", "metrics": _run_metrics(gold, kl, i)}
            for i, (gold, kl) in enumerate(zip(golds, kls, strict=True))
        ],
    }


def write_submissions(folder: Path, agents: dict[str, tuple[str, list[float], list[float], str | None]] = AGENTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (name, golds, kls, code) in agents.items():
        (folder / f"{stem}.json").write_text(json.dumps(make_submission(name, golds, kls, code)), encoding="utf-8")
    return folder


@pytest.fixture
def built(tmp_path: Path) -> tuple[str, str]:
    """(README.md, index.html) built from `AGENTS`."""
    lb.build(write_submissions(tmp_path / "submissions"), tmp_path / "out")
    return (tmp_path / "out" / "README.md").read_text(encoding="utf-8"), (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def _expected_order() -> list[str]:
    return sorted(AGENTS, key=lambda stem: -_iqm_by_hand(AGENTS[stem][1]))


def _markdown_rows(readme: str, env_id: str = ENV) -> list[list[str]]:
    """The cells of each body row of the env's table (split on unescaped pipes)."""
    section = readme.split(f"## {lb.markdown_escape(env_id)}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header, rule, *body = lines
    assert [c.strip() for c in re.split(r"(?<!\\)\|", header)[1:-1]] == [c.header for c in lb.COLUMNS]
    assert rule.count("|") == len(lb.COLUMNS) + 1
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in body]


class _Rows(HTMLParser):
    """The ``data-source`` of every ``<tr>`` in a table body, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr" and "data-source" in values:
            self.sources.append(str(values["data-source"]))


def html_row_sources(page: str) -> list[str]:
    parser = _Rows()
    parser.feed(page)
    return parser.sources


# Estimators ---------------------------------------------------------------------------------
def test_iqm_on_hand_made_numbers():
    assert lb.iqm([1, 2, 3, 4]) == pytest.approx(2.5)  # cuts 1 and 4
    assert lb.iqm([1, 2, 3, 4, 100, 200, 300, 400]) == pytest.approx(76.75)  # keeps 3, 4, 100, 200
    assert lb.iqm([0.0, 1.0, 1.0, 1.0, 1000.0]) == pytest.approx(1.0)  # one outlier per side cut
    assert lb.iqm([5.0, 1.0, 3.0]) == pytest.approx(3.0)  # n < 4: the plain mean
    assert lb.iqm([7.0]) == pytest.approx(7.0)
    columns = lb.iqm(np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]]), axis=0)
    np.testing.assert_allclose(columns, [2.5, 25.0])
    for golds in (entry[1] for entry in AGENTS.values()):
        assert lb.iqm(golds) == pytest.approx(_iqm_by_hand(golds))
    with pytest.raises(ValueError):
        lb.iqm([])


def test_bootstrap_ci_contains_the_point_estimate_and_narrows_with_more_runs():
    rng = np.random.default_rng(123)
    widths = []
    for n in (5, 20, 80):
        runs = rng.normal(0.5, 0.1, size=n)
        low, high = lb.bootstrap_ci(runs)
        assert low <= lb.iqm(runs) <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    # Shared resamples over metric columns, deterministic under the fixed seed.
    table = rng.normal(size=(10, 3))
    low, high = lb.bootstrap_ci(table)
    assert low.shape == high.shape == (3,)
    assert np.all(low <= lb.iqm(table, axis=0)) and np.all(lb.iqm(table, axis=0) <= high)
    np.testing.assert_array_equal(lb.bootstrap_ci(table)[0], low)
    assert lb.bootstrap_ci(table[:, 1])[0] == pytest.approx(low[1])
    # Identical runs: a zero-width interval at the value.
    assert lb.bootstrap_ci([0.3, 0.3, 0.3]) == (pytest.approx(0.3), pytest.approx(0.3))


# The Markdown table ---------------------------------------------------------------------------
def test_readme_ranks_by_gold_iqm_with_the_numbers_recomputed_from_the_inputs(built):
    readme, _ = built
    rows = _markdown_rows(readme)
    header = [c.key for c in lb.COLUMNS]
    col = {key: header.index(key) for key in header}
    order = _expected_order()
    assert order == ["ppo", "xss", "pipe", "sft"]  # the plain mean would put pipe first and ppo third
    assert len(rows) == len(order)
    for rank, (cells, stem) in enumerate(zip(rows, order), start=1):
        name, golds, kls, code = AGENTS[stem]
        assert len(cells) == len(lb.COLUMNS)
        assert cells[col["rank"]] == str(rank)
        assert cells[col["agent"]].startswith(f"[{lb.markdown_escape(name)}]" if code else lb.markdown_escape(name))
        gold = cells[col["gold"]]
        assert gold.startswith(f"{_iqm_by_hand(golds):.3f} [")
        low, high = (float(v) for v in re.fullmatch(r"[-\d.]+ \[([-\d.]+), ([-\d.]+)\]", gold).groups())
        assert low <= _iqm_by_hand(golds) + 5e-4 and _iqm_by_hand(golds) - 5e-4 <= high
        assert cells[col["kl"]] == f"{_iqm_by_hand(kls):.2f}"
        assert cells[col["greedy_gold"]] == f"{_iqm_by_hand([g + 0.02 for g in golds]):.3f}"
        assert float(cells[col["gold_change"]]) == pytest.approx(_iqm_by_hand([g - 0.45 for g in golds]), abs=5e-4)
        assert cells[col["runs"]] == str(len(golds))
        assert cells[col["training_env_steps"]] == ("20,000" if code else "0")
        assert cells[col["date"]] == "2026-12-01"
    assert "[PPO (rlhf-gym)](https://github.com/x/ppo) ([paper](https://arxiv.org/abs/2403.17031))" in readme
    assert REBUILD in readme and "interquartile mean" in readme


def test_readme_escapes_submission_strings(built):
    readme, _ = built
    assert r"best\|of\|n" in readme and "best|of" not in readme
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in readme and "<script>" not in readme
    assert r"SFT \`v0\`" in readme
    assert lb.markdown_escape("a\nb\r\nc|d") == r"a b c\|d"


# The HTML page --------------------------------------------------------------------------------
def test_html_escapes_every_submission_string(built):
    _, page = built
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert page.count("<script") == 1  # the page's own sorting script, nothing else
    assert "best|of|n" in page  # `|` needs no escaping in HTML
    assert "SFT `v0`" in page
    assert not re.search(r"""<(link|img|iframe)\b|\bsrc=|https?://(?!arxiv\.org/|github\.com/x/|www\.w3\.org/2000/svg)""", page)


def test_html_tables_and_plot(built):
    _, page = built
    order = _expected_order()
    assert html_row_sources(page) == [f"{stem}.json" for stem in order]
    assert page.count('<circle class="point"') == len(AGENTS)
    assert re.findall(r'<g class="submission" data-source="([^"]+)"', page) == [f"{stem}.json" for stem in order]
    assert page.count("<svg") == 1
    for column in lb.COLUMNS:
        assert f'data-key="{column.key}" data-type="{"num" if column.numeric else "text"}"' in page
    # Numeric cells carry their exact value for the script's numeric sort.
    values = [float(v) for v in re.findall(r'class="num" data-value="([^"]+)"', page)]
    assert any(v == pytest.approx(_iqm_by_hand(AGENTS["ppo"][1]), abs=1e-12) for v in values)


def test_hostile_urls_are_not_linked(tmp_path):
    submission = make_submission("evil", [0.5, 0.5, 0.5], [1.0, 1.0, 1.0], code="javascript:alert(1)")
    submission["agent"]["paper"] = 'https://example.org/"onmouseover="alert(1)'
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "evil.json").write_text(json.dumps(submission), encoding="utf-8")
    lb.build(folder, tmp_path / "out")
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "javascript:" not in page and "javascript:" not in readme
    assert '"onmouseover' not in page and "&quot;onmouseover=&quot;alert(1)" in page
    assert "https://example.org/%22onmouseover=%22alert%281%29" in readme


# Files, errors and the CLI glue -------------------------------------------------------------
def test_build_is_deterministic_and_groups_envs(tmp_path):
    folder = write_submissions(tmp_path / "submissions")
    other = make_submission("other env agent", [0.2, 0.3, 0.4], [1.0, 2.0, 3.0], env_id="RLHF-Other-v0")
    (folder / "other.json").write_text(json.dumps(other), encoding="utf-8")
    (folder / "notes.txt").write_text("not a submission", encoding="utf-8")
    lb.build(folder, tmp_path / "a")
    lb.build(folder, tmp_path / "b")
    for name in ("README.md", "index.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    readme = (tmp_path / "a" / "README.md").read_text(encoding="utf-8")
    assert readme.index("## RLHF-Other-v0") < readme.index(f"## {ENV}")
    assert len(_markdown_rows(readme, "RLHF-Other-v0")) == 1 and len(_markdown_rows(readme)) == len(AGENTS)
    page = (tmp_path / "a" / "index.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 2 and page.count('<circle class="point"') == len(AGENTS) + 1


def test_errors_name_the_file(tmp_path):
    folder = write_submissions(tmp_path / "submissions")
    (folder / "broken.json").write_text('{"env_id": ', encoding="utf-8")
    with pytest.raises(lb.SubmissionError, match=r"broken\.json.*not a valid UTF-8 JSON"):
        lb.build(folder, tmp_path / "out")
    (folder / "broken.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(lb.SubmissionError, match=r"broken\.json.*JSON object"):
        lb.build(folder, tmp_path / "out")
    submission = make_submission("x", [0.5, 0.5, 0.5], [1.0, 1.0, 1.0])
    del submission["runs"][1]["metrics"]["sampled"]["kl"]
    (folder / "broken.json").write_text(json.dumps(submission), encoding="utf-8")
    with pytest.raises(lb.SubmissionError, match=r"broken\.json: missing runs\[1\]\.metrics\.sampled\.'kl'"):
        lb.build(folder, tmp_path / "out")
    submission["runs"][1]["metrics"]["sampled"]["kl"] = "4.2"
    (folder / "broken.json").write_text(json.dumps(submission), encoding="utf-8")
    with pytest.raises(lb.SubmissionError, match=r"broken\.json: runs\[1\]\.metrics\.sampled\.'kl' must be int or float"):
        lb.build(folder, tmp_path / "out")
    submission["runs"][1]["metrics"]["sampled"]["kl"] = 4.2
    submission["training_env_steps"] = True
    (folder / "broken.json").write_text(json.dumps(submission), encoding="utf-8")
    with pytest.raises(lb.SubmissionError, match=r"'training_env_steps' must be int"):
        lb.build(folder, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no submissions folder"):
        lb.build(tmp_path / "missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written on failure


def test_empty_folder_builds_an_empty_board(tmp_path):
    (tmp_path / "submissions").mkdir()
    lb.build(tmp_path / "submissions", tmp_path / "out")
    assert "No submissions yet." in (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "No submissions yet." in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def test_build_main_prints_what_it_wrote_and_defaults_to_the_package_folder(tmp_path, monkeypatch, capsys):
    assert lb.DEFAULT_SUBMISSIONS == Path(lb.__file__).resolve().parent / "submissions"
    assert lb.DEFAULT_OUT == Path(lb.__file__).resolve().parent
    folder = write_submissions(tmp_path / "submissions")
    lb.build_main(str(folder), str(tmp_path / "out"))
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'out' / 'README.md'}" in out and f"wrote {tmp_path / 'out' / 'index.html'}" in out
    assert f"read {len(AGENTS)} submission(s) for 1 env(s)" in out
    monkeypatch.setattr(lb, "DEFAULT_SUBMISSIONS", folder)
    monkeypatch.setattr(lb, "DEFAULT_OUT", tmp_path / "default-out")
    lb.build_main()
    assert (tmp_path / "default-out" / "README.md").is_file() and (tmp_path / "default-out" / "index.html").is_file()
    (folder / "bad.json").write_text("nope", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"bad\.json"):
        lb.build_main(str(folder), str(tmp_path / "out"))

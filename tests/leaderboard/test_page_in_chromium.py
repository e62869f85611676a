"""The leaderboard page in a real browser: headless Chromium lays it out and runs its script.

Skipped when no ``chromium`` binary is on PATH (``.ci/run`` installs Debian's ``chromium``
when it can). ``--dump-dom`` prints the DOM after the page's scripts ran, so each check
runs a copy of the page with one extra inline script that acts (clicks a header) or
measures (writes bounding boxes as JSON into an attribute of ``<html>``), and reads the
result from the dumped DOM. Checked: sorting from the URL and by clicks; at a 1,400 px wide
window the budget column and the whole default table are in view; the "show all columns"
switch shows the rest; and no two labels of the gold-vs-KL plot overlap (nor cover a
point), on eleven submissions with close gold and KL, the real board's crowded pairs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rlhf_gym.leaderboard import validate
from rlhf_gym.leaderboard.build import build

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
ENV = "RLHF-Summarize-v0"
POSTS = 32
PROTOCOL = SimpleNamespace(env_id=ENV, version="summarize-test-v1", hash="sha256:" + "0123456789abcdef" * 4, posts=POSTS)
SFT_POLICY = "../../envs/summarize/assets/sft_policy"
WIDTH, HEIGHT = 1400, 900

# file stem -> (agent name, mean gold, KL of every run). The KLs sort differently as numbers
# and as strings ("10.2" < "100.0" < "2.0" < "9.5"), and differently from gold.
AGENTS: dict[str, tuple[str, float, float]] = {
    "alpha": ("alpha <b>bold</b>", 0.71, 9.5),
    "beta": ("beta | pipes", 0.61, 100.0),
    "gamma": ("gamma", 0.51, 2.0),
    "delta": ("<script>alert(1)</script>", 0.41, 10.2),
}
BY_GOLD = ["alpha", "beta", "gamma", "delta"]
BY_KL_ASC = ["gamma", "alpha", "delta", "beta"]

# Eleven agents shaped like the real board: pairs and triples within 0.01 gold and 0.1 KL
# (rloo/grpo, the SB3 agents, a2c beside SFT), long names, two decoding baselines.
CROWD: dict[str, tuple[str, float, float, int]] = {
    "best-of-16": ("best-of-16 sampling from the SFT policy (by the preference model)", 0.914, 1.84, 0),
    "ppo": ("ppo (rlhf-gym, 20000-step budget)", 0.852, 2.71, 21276),
    "ppo-long": ("ppo (rlhf-gym, 130000-step budget)", 0.853, 2.65, 130000),
    "best-of-4": ("best-of-4 sampling from the SFT policy (by the preference model)", 0.846, 0.64, 0),
    "rloo": ("rloo (rlhf-gym, 20000-step budget)", 0.828, 0.68, 21741),
    "grpo": ("grpo (rlhf-gym, 20000-step budget)", 0.827, 0.58, 21870),
    "sb3-maskable-ppo": ("sb3-maskable-ppo (rlhf-gym, 3072-step budget)", 0.688, 0.16, 3072),
    "sb3-ppo": ("sb3-ppo (rlhf-gym, 3072-step budget)", 0.684, 0.16, 3072),
    "sb3-trpo": ("sb3-trpo (rlhf-gym, 3072-step budget)", 0.650, 0.31, 3072),
    "sb3-a2c": ("sb3-a2c (rlhf-gym, 3072-step budget)", 0.602, 0.00, 3072),
    "sft": ("SFT policy (no RL)", 0.599, 0.00, 0),
}


def _submission(name: str, gold: float, kl: float, steps: int = 1000, policy: str | None = None) -> dict[str, Any]:
    """A valid schema-version-2 submission of three runs around ``gold`` (per-post scores from a fixed stream)."""
    post = np.random.default_rng(0).normal(0, 0.05, POSTS)
    sft_gold = [round(float(v), 6) for v in np.clip(0.5 + post, 0, 1)]
    runs = []
    for seed in range(3):
        noise = np.random.default_rng([seed, int(gold * 1e6)]).normal(0, 0.02, POSTS)
        scores = [round(float(v), 6) for v in np.clip(gold + post + noise, 0, 1)]
        sampled = {
            "gold": float(np.mean(scores)), "gold_change": float(np.mean(np.subtract(scores, sft_gold))), "gold_change_sem": 0.01,
            "win_rate": 0.3, "proxy_reward": 1.0 + gold, "kl": kl, "rouge_l": 0.3, "bleu": 10.0, "perplexity": 3.5,
            "distinct_1": 0.6, "distinct_2": 0.85, "response_length": 40.0 + seed, "eos_rate": 0.95,
        }
        greedy = {key: value for key, value in sampled.items() if key != "kl"}
        runs.append({
            "seed": seed, "policy": policy or f"../checkpoints/x/seed{seed}",
            "training_command": f"rlhf-gym train --seed {seed}" if steps else None,
            "metrics": {"sampled": sampled, "greedy": greedy},
            "per_post": {decoding: {"gold": scores, "sft_gold": sft_gold} for decoding in ("sampled", "greedy")},
        })
    return {
        "schema_version": 2, "env_id": ENV, "protocol_version": PROTOCOL.version, "protocol_hash": PROTOCOL.hash,
        "agent": {"name": name, "paper": None, "code": None}, "training_env_steps": steps, "hardware": "2 CPU cores",
        "date": "2026-12-01", "runs": runs,
    }


def _build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, submissions: dict[str, dict[str, Any]]) -> Path:
    if CHROMIUM is None:
        pytest.skip("no `chromium` binary on PATH (Debian: apt-get install chromium); the browser test needs one")
    monkeypatch.setattr(validate, "get_protocol", lambda env_id: PROTOCOL)
    folder = tmp_path / "submissions"
    folder.mkdir()
    for stem, submission in submissions.items():
        (folder / f"{stem}.json").write_text(json.dumps(submission), encoding="utf-8")
    build(folder, tmp_path / "site")
    return tmp_path / "site" / "index.html"


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _build(tmp_path, monkeypatch, {stem: _submission(name, gold, kl) for stem, (name, gold, kl) in AGENTS.items()})


@pytest.fixture
def crowded_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    submissions = {}
    for stem, (name, gold, kl, steps) in CROWD.items():
        policy = None if steps else (SFT_POLICY if stem == "sft" else f"{stem}:{SFT_POLICY}")
        submissions[stem] = _submission(name, gold, kl, steps, policy)
    return _build(tmp_path, monkeypatch, submissions)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}", *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"chromium failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result


class _Dom(HTMLParser):
    """Row order (``data-source`` of each ``<tr>``), each header's ``aria-sort``, and ``<html data-boxes>``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.aria: dict[str, str] = {}
        self.ready = False
        self.boxes: Any = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.ready = values.get("data-sort-ready") == "1"
            if values.get("data-boxes"):
                self.boxes = json.loads(str(values["data-boxes"]))
        elif tag == "tr" and "data-source" in values:
            self.rows.append(str(values["data-source"]).removesuffix(".json"))
        elif tag == "th" and "data-key" in values:
            self.aria[str(values["data-key"])] = str(values.get("aria-sort"))


def _dump(tmp_path: Path, page: Path, script: str = "", fragment: str = "") -> _Dom:
    """The DOM of ``page`` (plus ``script``, run after the page's own) at a `WIDTH` x `HEIGHT` window."""
    copy = page.with_name("checked.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", f"<script>{script}</script>\n</body>"), encoding="utf-8")
    dom = _Dom()
    dom.feed(_chromium(tmp_path, f"--window-size={WIDTH},{HEIGHT}", "--dump-dom", copy.as_uri() + fragment).stdout)
    assert dom.ready, "the page's script did not run"
    return dom


def test_chromium_renders_the_page(page, tmp_path):
    shot = tmp_path / "page.png"
    _chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{len(data)} bytes"
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 50, f"only {len(colours)} colours: a blank page?"
    assert (pixels[..., :3].mean(axis=-1) < 0.3).mean() > 0.002  # dark ink on the light background


def test_the_table_renders_escaped_and_ranked(page, tmp_path):
    dump = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    dom = _Dom()
    dom.feed(dump)
    assert dom.ready and dom.rows == BY_GOLD
    assert dom.aria["rank"] == "ascending" and dom.aria["kl"] == "none"
    assert "<script>alert" not in dump and "alert(1)" in dump
    assert "<b>bold</b>" not in dump
    assert dump.count('<g class="submission"') == len(AGENTS)


@pytest.mark.parametrize(
    ("fragment", "expected", "key", "aria"),
    [
        ("#sort=gold&dir=asc", BY_GOLD[::-1], "gold", "ascending"),
        ("#sort=kl&dir=asc", BY_KL_ASC, "kl", "ascending"),  # numeric, not "10.2" < "100.0" < "2.0"
        ("?sort=kl&dir=desc", BY_KL_ASC[::-1], "kl", "descending"),
        ("#sort=rank&dir=desc", BY_GOLD[::-1], "rank", "descending"),
        ("#sort=no-such-column&dir=asc", BY_GOLD, "rank", "ascending"),  # ignored
    ],
    ids=["gold-asc", "kl-asc", "query-kl-desc", "rank-desc", "unknown-column"],
)
def test_sorting_from_the_url(page, tmp_path, fragment, expected, key, aria):
    dom = _dump(tmp_path, page, fragment=fragment)
    assert dom.rows == expected
    assert dom.aria[key] == aria


def _click(key: str, times: int) -> str:
    return f"var b = document.querySelector('th[data-key={key}] button'); for (var i = 0; i < {times}; i++) {{ b.click(); }}"


@pytest.mark.parametrize(
    ("script", "expected", "key", "aria"),
    [
        (_click("kl", 1), BY_KL_ASC[::-1], "kl", "descending"),  # a number column sorts descending first
        (_click("kl", 2), BY_KL_ASC, "kl", "ascending"),  # the second click reverses it
        (_click("gold", 1), BY_GOLD, "gold", "descending"),
        (_click("rank", 1), BY_GOLD[::-1], "rank", "descending"),  # the page starts ranked, ascending
        (_click("kl", 1) + _click("gold", 2), BY_GOLD[::-1], "gold", "ascending"),
    ],
    ids=["kl-once", "kl-twice", "gold-once", "rank-once", "kl-then-gold-twice"],
)
def test_clicking_a_header_sorts_and_toggles(page, tmp_path, script, expected, key, aria):
    dom = _dump(tmp_path, page, script)
    assert dom.rows == expected
    assert dom.aria[key] == aria
    assert [k for k, v in dom.aria.items() if v != "none"] == [key]


_MEASURE = """
function box(e) { var r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
function all(selector) { return Array.prototype.map.call(document.querySelectorAll(selector), box); }
var measured = { width: window.innerWidth, budget: all("table.board [data-key=budget], table.board td.budget"),
  table: all("table.board"), extra: all("table.board td.extra"), labels: all("svg.plot text.label"),
  texts: Array.prototype.map.call(document.querySelectorAll("svg.plot text.label"), function (e) { return e.textContent; }),
  points: all("svg.plot .point") };
var box_ = document.querySelector("input.show-extra"); box_.click();
measured.extraShown = all("table.board td.extra");
document.documentElement.setAttribute("data-boxes", JSON.stringify(measured));
"""


def _overlap(a: list[float], b: list[float], tolerance: float = 0.5) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > tolerance and min(a[3], b[3]) - max(a[1], b[1]) > tolerance


def test_at_1400_px_the_budget_is_in_view_and_no_plot_labels_overprint(crowded_page, tmp_path):
    boxes = _dump(tmp_path, crowded_page, _MEASURE).boxes
    assert boxes["width"] == WIDTH
    # The budget column (header and every cell), and the whole table with its default columns, inside the window.
    assert len(boxes["budget"]) == len(CROWD) + 1
    for left, top, right, bottom in boxes["budget"] + boxes["table"]:
        assert 0 <= left < right <= WIDTH and bottom > top, (left, right)
    # The less used columns are hidden until the switch shows them.
    assert boxes["extra"] and all(right - left == 0 for left, _, right, _ in boxes["extra"])
    assert all(right - left > 0 for left, _, right, _ in boxes["extraShown"])
    # Plot labels: one per agent, no two overlapping, none over a point.
    labels, points = boxes["labels"], boxes["points"]
    assert len(labels) == len(points) == len(CROWD)
    assert all(right - left > 20 for left, _, right, _ in labels), boxes["texts"]
    clashes = [(boxes["texts"][i], boxes["texts"][j]) for i in range(len(labels)) for j in range(i + 1, len(labels))
               if _overlap(labels[i], labels[j])]
    assert clashes == []
    covered = [(boxes["texts"][i], j) for i, label in enumerate(labels) for j, point in enumerate(points) if _overlap(label, point)]
    assert covered == []

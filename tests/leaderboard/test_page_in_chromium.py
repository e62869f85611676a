"""The leaderboard page in a real browser: headless Chromium renders it and its script sorts the tables.

Skipped when no ``chromium`` binary is on PATH (``.ci/run`` installs Debian's ``chromium``
when it can). ``--dump-dom`` prints the DOM after the page's scripts ran, so the sorting
is checked three ways: the page's own ``#sort=KEY&dir=asc|desc`` / ``?sort=...`` URL
parameters, and real ``click()`` events on the header buttons, added by a copy of the page
with one extra inline script.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlhf_gym.leaderboard.build import build

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
ENV = "RLHF-Summarize-v0"

# file stem -> (agent name, per-run gold, KL of every run). The KLs sort differently as
# numbers and as strings ("10.2" < "100.0" < "2.0" < "9.5"), and differently from gold.
AGENTS: dict[str, tuple[str, list[float], float]] = {
    "alpha": ("alpha <b>bold</b>", [0.70, 0.72, 0.71, 0.20], 9.5),
    "beta": ("beta | pipes", [0.60, 0.61, 0.62], 100.0),
    "gamma": ("gamma", [0.50, 0.52, 0.51], 2.0),
    "delta": ("<script>alert(1)</script>", [0.40, 0.41, 0.42], 10.2),
}
BY_GOLD = ["alpha", "beta", "gamma", "delta"]
BY_KL_ASC = ["gamma", "alpha", "delta", "beta"]


def _submission(name: str, golds: list[float], kl: float) -> dict[str, Any]:
    runs = []
    for seed, gold in enumerate(golds):
        sampled = {
            "gold": gold, "gold_change": gold - 0.4, "gold_change_sem": 0.01, "win_rate": gold * 0.8, "proxy_reward": 1.0 + gold,
            "kl": kl, "rouge_l": 0.3, "bleu": 10.0, "perplexity": 3.5, "distinct_1": 0.6, "distinct_2": 0.85,
            "response_length": 40.0 + seed, "eos_rate": 0.95,
        }
        greedy = {key: value for key, value in sampled.items() if key != "kl"}
        runs.append({"seed": seed, "policy": f"runs/{seed}", "metrics": {"sampled": sampled, "greedy": greedy}})
    return {
        "schema_version": 1, "env_id": ENV, "protocol_version": "summarize-test-v1", "protocol_hash": "sha256:" + "0" * 64,
        "agent": {"name": name, "paper": None, "code": None}, "training_env_steps": 1000, "hardware": "2 CPU cores",
        "date": "2026-12-01", "runs": runs,
    }


@pytest.fixture
def page(tmp_path: Path) -> Path:
    if CHROMIUM is None:
        pytest.skip("no `chromium` binary on PATH (Debian: apt-get install chromium); the browser test needs one")
    folder = tmp_path / "submissions"
    folder.mkdir()
    for stem, (name, golds, kl) in AGENTS.items():
        (folder / f"{stem}.json").write_text(json.dumps(_submission(name, golds, kl)), encoding="utf-8")
    build(folder, tmp_path / "site")
    return tmp_path / "site" / "index.html"


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"chromium failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result


class _Dom(HTMLParser):
    """Row order (``data-source`` of each ``<tr>``) and each header's ``aria-sort``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.aria: dict[str, str] = {}
        self.ready = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.ready = values.get("data-sort-ready") == "1"
        elif tag == "tr" and "data-source" in values:
            self.rows.append(str(values["data-source"]).removesuffix(".json"))
        elif tag == "th" and "data-key" in values:
            self.aria[str(values["data-key"])] = str(values.get("aria-sort"))


def _dump(tmp_path: Path, url: str) -> _Dom:
    dom = _Dom()
    dom.feed(_chromium(tmp_path, "--dump-dom", url).stdout)
    assert dom.ready, "the page's script did not run"
    return dom


def test_chromium_renders_the_page(page, tmp_path):
    shot = tmp_path / "page.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{len(data)} bytes"
    try:
        import matplotlib.image as mpimg
    except ImportError:  # pragma: no cover - matplotlib is a dependency; fall back to the bytes
        assert len(set(data[100:])) > 200
        return
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (900, 1200)
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 50, f"only {len(colours)} colours: a blank page?"
    # Dark ink (text, points) on the light background, not a single colour.
    assert (pixels[..., :3].mean(axis=-1) < 0.3).mean() > 0.002


def test_the_table_renders_escaped_and_sorted_by_gold(page, tmp_path):
    dump = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    dom = _Dom()
    dom.feed(dump)
    assert dom.ready and dom.rows == BY_GOLD
    assert dom.aria["gold"] == "descending" and dom.aria["kl"] == "none"
    assert "<script>alert" not in dump and "alert(1)" in dump
    assert "<b>bold</b>" not in dump
    assert dump.count('class="point"') == len(AGENTS)


@pytest.mark.parametrize(
    ("fragment", "expected", "key", "aria"),
    [
        ("#sort=gold&dir=asc", BY_GOLD[::-1], "gold", "ascending"),
        ("#sort=kl&dir=asc", BY_KL_ASC, "kl", "ascending"),  # numeric, not "10.2" < "100.0" < "2.0"
        ("?sort=kl&dir=desc", BY_KL_ASC[::-1], "kl", "descending"),
        ("#sort=rank&dir=desc", BY_GOLD[::-1], "rank", "descending"),
        ("#sort=no-such-column&dir=asc", BY_GOLD, "gold", "descending"),  # ignored
    ],
    ids=["gold-asc", "kl-asc", "query-kl-desc", "rank-desc", "unknown-column"],
)
def test_sorting_from_the_url(page, tmp_path, fragment, expected, key, aria):
    dom = _dump(tmp_path, page.as_uri() + fragment)
    assert dom.rows == expected
    assert dom.aria[key] == aria


def _click(key: str, times: int) -> str:
    return f"var b = document.querySelector('th[data-key={key}] button'); for (var i = 0; i < {times}; i++) {{ b.click(); }}"


@pytest.mark.parametrize(
    ("script", "expected", "key", "aria"),
    [
        (_click("kl", 1), BY_KL_ASC[::-1], "kl", "descending"),  # a number column sorts descending first
        (_click("kl", 2), BY_KL_ASC, "kl", "ascending"),  # the second click reverses it
        (_click("gold", 1), BY_GOLD[::-1], "gold", "ascending"),  # the page starts sorted by gold, descending
        (_click("kl", 1) + _click("gold", 1), BY_GOLD, "gold", "descending"),
    ],
    ids=["kl-once", "kl-twice", "gold-once", "kl-then-gold"],
)
def test_clicking_a_header_sorts_and_toggles(page, tmp_path, script, expected, key, aria):
    """Real click events on the header buttons, from one extra script in a copy of the page."""
    copy = page.with_name("clicked.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", f"<script>{script}</script>\n</body>"), encoding="utf-8")
    dom = _dump(tmp_path, copy.as_uri())
    assert dom.rows == expected
    assert dom.aria[key] == aria
    assert [k for k, v in dom.aria.items() if v != "none"] == [key]

"""``rlhf-gym leaderboard build``: the published tables, from ``leaderboard/submissions/*.json``.

Every submission (the format of ``leaderboard/schema.json``) is one agent on one env with at
least three runs (seeds). Per env, each submission is one row; each metric of
``metrics.sampled`` (and the greedy decoding's ``gold``) is summarised across the runs by its
**interquartile mean** (IQM: the mean of the middle 50% of runs, ``scipy.stats.trim_mean(x,
0.25)``) with a **95% stratified bootstrap confidence interval**, as recommended by Agarwal et
al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS):
the IQM is robust to one outlying seed yet less noisy than the median, and the interval says
how much of a gap between two rows the seeds can explain. Rows are ranked by the IQM of
``gold``, the true preference the learned reward only approximates.

Two files are written: ``README.md`` (one Markdown table per env) and ``index.html`` (one
self-contained static page: the same tables, sortable by clicking a column header, and a
plot of gold against KL per env as inline SVG; no network, no external scripts or styles).

Why not the ``rliable`` library, which implements exactly these estimators: on this
project's stack it does not work. rliable 1.2.0 requires ``arch<8``; arch 7.2 fails to
import with pandas 3.1 (``deprecate_kwarg() missing 1 required positional argument``), and
arch 8 breaks rliable's ``StratifiedBootstrap`` (it rejects ``random_state=None``). The two
estimators are a few lines, so they are implemented here: `iqm` is scipy's ``trim_mean(x,
0.25)`` (rliable's IQM: ``int(0.25 * n)`` runs cut off each end of the sorted runs), and
`bootstrap_ci` is a numpy percentile bootstrap over runs with a fixed seed. With one
task per env, rliable's stratified bootstrap (resample runs within each task) reduces to
resampling the runs with replacement. All metrics of a submission share the same resamples
(a resample is a set of runs, each run carrying all its metrics), and the seed is fixed, so
the build is deterministic: the same submissions always give byte-identical files.

Nothing read from a submission reaches the output unescaped: Markdown cells escape ``\\``,
``|``, ``<``, ``>``, ``&``, backticks, emphasis and link brackets and fold newlines; every
string in the HTML goes through ``html.escape(..., quote=True)``; links are made only from
``http(s)`` URLs. The page's script moves existing table rows and never builds HTML.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from scipy.stats import trim_mean

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_SUBMISSIONS = PACKAGE_DIR / "submissions"
DEFAULT_OUT = PACKAGE_DIR
REBUILD_COMMAND = "rlhf-gym leaderboard build"

N_RESAMPLES = 2000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0

# The keys of `metrics.sampled` (schema version 1); `metrics.greedy` has all but `kl`.
SAMPLED_METRICS = (
    "gold",
    "gold_change",
    "gold_change_sem",
    "win_rate",
    "proxy_reward",
    "kl",
    "rouge_l",
    "bleu",
    "perplexity",
    "distinct_1",
    "distinct_2",
    "response_length",
    "eos_rate",
)
GREEDY_METRICS = ("gold",)  # the greedy metrics the tables show, as `greedy_<key>`
METRICS = SAMPLED_METRICS + tuple(f"greedy_{key}" for key in GREEDY_METRICS)


class SubmissionError(ValueError):
    """A submission file that cannot be read or lacks what the build needs; names the file."""


# Estimators -------------------------------------------------------------------------------
def iqm(values: Sequence[float] | np.ndarray, axis: int = -1) -> float | np.ndarray:
    """The interquartile mean along ``axis``: ``scipy.stats.trim_mean(values, 0.25, axis)``.

    The ``int(0.25 * n)`` smallest and largest values are cut and the rest averaged (for
    n < 4 nothing is cut: the plain mean).

    >>> iqm([1, 2, 3, 4, 100, 200, 300, 400])   # keeps 3, 4, 100, 200
    76.75
    >>> iqm([5.0, 1.0, 3.0])
    3.0
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or array.shape[axis] == 0:
        raise ValueError("the IQM needs at least one value")
    result = np.asarray(trim_mean(array, 0.25, axis=axis))
    return float(result) if result.ndim == 0 else result


def bootstrap_ci(
    runs: Sequence[Sequence[float]] | np.ndarray,
    statistic: Callable[..., Any] = iqm,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of ``statistic`` over runs.

    ``runs`` is ``(n_runs,)`` or ``(n_runs, n_metrics)``: each resample draws ``n_runs``
    runs with replacement (whole rows, so metrics share resamples) and applies
    ``statistic(x, axis=1)``; the interval is the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles of the ``n_resamples`` results. Returns
    ``(low, high)``, each of shape ``(n_metrics,)`` (or scalars' 0-d arrays for 1-d input).
    """
    array = np.asarray(runs, dtype=np.float64)
    squeeze = array.ndim == 1
    if squeeze:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"runs must be (n_runs,) or (n_runs, n_metrics) with n_runs >= 1, got shape {array.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, array.shape[0], size=(n_resamples, array.shape[0]))
    stats = np.asarray(statistic(array[index], axis=1))  # (n_resamples, n_metrics)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha], axis=0)
    return (low[0], high[0]) if squeeze else (low, high)


@dataclass(frozen=True)
class Estimate:
    """One metric of one submission across its runs: the IQM and its 95% bootstrap CI."""

    iqm: float
    low: float
    high: float


def aggregate(values: np.ndarray, names: Sequence[str] = METRICS) -> dict[str, Estimate]:
    """IQM and bootstrap CI of each column of ``values`` (``(n_runs, len(names))``)."""
    values = np.asarray(values, dtype=np.float64)
    point = np.atleast_1d(iqm(values, axis=0))
    low, high = bootstrap_ci(values)
    return {name: Estimate(float(point[i]), float(low[i]), float(high[i])) for i, name in enumerate(names)}


# Loading ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One submission, summarised: what a leaderboard row shows."""

    source: str  # the file name, e.g. "ppo.json"
    env_id: str
    protocol_version: str
    agent_name: str
    paper: str | None
    code: str | None
    training_env_steps: int
    date: str
    n_runs: int
    metrics: dict[str, Estimate]  # keys: METRICS


def load_submission(path: Path) -> dict[str, Any]:
    """The JSON object of one submission file; a `SubmissionError` naming it if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SubmissionError(f"{path}: not a valid UTF-8 JSON file ({error})") from None
    if not isinstance(data, dict):
        raise SubmissionError(f"{path}: a submission is a JSON object, got {type(data).__name__}")
    return data


def _require(path: Path, container: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``container[key]``, checked to be of ``kind`` (a bool is never a number)."""
    if not isinstance(container, dict) or key not in container:
        raise SubmissionError(f"{path}: missing {where}{key!r}")
    value = container[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise SubmissionError(f"{path}: {where}{key!r} must be {_kind_name(kinds)}, got {value!r:.80}")
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def _number(path: Path, container: Any, key: str, where: str) -> float:
    value = _require(path, container, key, (int, float), where)
    if not math.isfinite(value):
        raise SubmissionError(f"{path}: {where}{key!r} must be a finite number, got {value!r}")
    return float(value)


def summarize(path: Path, submission: dict[str, Any]) -> Row:
    """The leaderboard row of one submission, checking every key it reads.

    Full validation against the schema is `rlhf_gym.leaderboard.validate`'s job; this only
    makes sure a malformed file fails here with its name instead of deep in the rendering.
    """
    env_id = _require(path, submission, "env_id", str, "")
    protocol = _require(path, submission, "protocol_version", str, "")
    agent = _require(path, submission, "agent", dict, "")
    name = _require(path, agent, "name", str, "agent.")
    paper = _require(path, agent, "paper", (str, type(None)), "agent.") if "paper" in agent else None
    code = _require(path, agent, "code", (str, type(None)), "agent.") if "code" in agent else None
    steps = _require(path, submission, "training_env_steps", int, "")
    date = _require(path, submission, "date", str, "")
    runs = _require(path, submission, "runs", list, "")
    if not runs:
        raise SubmissionError(f"{path}: 'runs' is empty")
    values = np.empty((len(runs), len(METRICS)))
    for i, run in enumerate(runs):
        where = f"runs[{i}]."
        if not isinstance(run, dict):
            raise SubmissionError(f"{path}: runs[{i}] must be an object")
        metrics = _require(path, run, "metrics", dict, where)
        sampled = _require(path, metrics, "sampled", dict, where + "metrics.")
        greedy = _require(path, metrics, "greedy", dict, where + "metrics.")
        row = [_number(path, sampled, key, where + "metrics.sampled.") for key in SAMPLED_METRICS]
        row += [_number(path, greedy, key, where + "metrics.greedy.") for key in GREEDY_METRICS]
        values[i] = row
    return Row(
        source=path.name,
        env_id=env_id,
        protocol_version=protocol,
        agent_name=name,
        paper=paper,
        code=code,
        training_env_steps=steps,
        date=date,
        n_runs=len(runs),
        metrics=aggregate(values),
    )


def load_rows(submissions_dir: Path) -> dict[str, list[Row]]:
    """Every ``*.json`` of the folder, summarised and grouped by env id.

    Envs are in name order; each env's rows are ranked by gold IQM, best first (ties:
    greedy gold, then agent name, then file name).
    """
    submissions_dir = Path(submissions_dir)
    if not submissions_dir.is_dir():
        raise FileNotFoundError(f"no submissions folder at {submissions_dir}")
    tables: dict[str, list[Row]] = {}
    for path in sorted(submissions_dir.glob("*.json")):
        row = summarize(path, load_submission(path))
        tables.setdefault(row.env_id, []).append(row)
    for rows in tables.values():
        rows.sort(key=lambda r: (-r.metrics["gold"].iqm, -r.metrics["greedy_gold"].iqm, r.agent_name, r.source))
    return dict(sorted(tables.items()))


# Columns ----------------------------------------------------------------------------------
def _fixed(digits: int, signed: bool = False) -> Callable[[float], str]:
    def format_(value: float) -> str:
        text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
        if float(text) == 0:  # no "-0.000"
            text = f"{0.0:+.{digits}f}" if signed else f"{0.0:.{digits}f}"
        return text

    return format_


def _perplexity(value: float) -> str:
    return f"{value:.2f}" if value < 1e4 else f"{value:.3g}"


@dataclass(frozen=True)
class Column:
    key: str  # the sort key (`#sort=KEY`) and, for metrics, the METRICS name
    header: str
    numeric: bool
    metric: str | None = None  # METRICS name of a metric column
    format: Callable[[float], str] | None = None
    with_ci: bool = False  # the Markdown cell shows the CI too


COLUMNS = (
    Column("rank", "rank", True),
    Column("agent", "agent", False),
    Column("gold", "gold IQM [95% CI]", True, "gold", _fixed(3), with_ci=True),
    Column("gold_change", "gold change", True, "gold_change", _fixed(3, signed=True)),
    Column("win_rate", "win rate", True, "win_rate", _fixed(3)),
    Column("kl", "KL", True, "kl", _fixed(2)),
    Column("proxy_reward", "proxy", True, "proxy_reward", _fixed(3)),
    Column("rouge_l", "ROUGE-L", True, "rouge_l", _fixed(3)),
    Column("bleu", "BLEU", True, "bleu", _fixed(2)),
    Column("perplexity", "perplexity", True, "perplexity", _perplexity),
    Column("distinct_2", "distinct-2", True, "distinct_2", _fixed(3)),
    Column("response_length", "length", True, "response_length", _fixed(1)),
    Column("eos_rate", "EOS rate", True, "eos_rate", _fixed(3)),
    Column("greedy_gold", "greedy gold", True, "greedy_gold", _fixed(3)),
    Column("training_env_steps", "training env steps", True),
    Column("runs", "runs", True),
    Column("date", "date", False),
)


def metric_text(column: Column, estimate: Estimate, with_ci: bool) -> str:
    """A metric cell's text: the IQM, and ``[low, high]`` when ``with_ci``."""
    assert column.format is not None
    text = column.format(estimate.iqm)
    if with_ci:
        text += f" [{column.format(estimate.low)}, {column.format(estimate.high)}]"
    return text


def _plain_cell(column: Column, rank: int, row: Row) -> str:
    """The text of a non-metric, non-agent cell (not yet escaped)."""
    if column.key == "rank":
        return str(rank)
    if column.key == "training_env_steps":
        return f"{row.training_env_steps:,}"
    if column.key == "runs":
        return str(row.n_runs)
    if column.key == "date":
        return row.date
    raise AssertionError(column.key)


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) URL without whitespace or control characters, else None."""
    if not url or not re.fullmatch(r"https?://[^\s\x00-\x1f\x7f]+", url, flags=re.IGNORECASE):
        return None
    return url


def _links(row: Row) -> list[tuple[str, str]]:
    """(label, url) of the agent's links: its name to the code (else the paper), then the paper."""
    code, paper = safe_url(row.code), safe_url(row.paper)
    links = []
    if code:
        links.append(("code", code))
    if paper:
        links.append(("paper", paper))
    return links


# Markdown ---------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~])")


def markdown_escape(text: str) -> str:
    """``text`` safe inside a Markdown table cell: renders as itself, cannot break the table.

    >>> markdown_escape("a|b <i>`x`</i>\\nnext")
    'a\\\\|b &lt;i&gt;\\\\`x\\\\`&lt;/i&gt; next'
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return re.sub(r"[\r\n\t\x00-\x1f\x7f\u2028\u2029]+", " ", text)


def markdown_url(url: str) -> str:
    """A URL safe as a Markdown link target (no parentheses, pipes, spaces or angle brackets)."""
    return quote(url, safe=":/?#@!$&'*+,;=%~-._")


def _markdown_agent(row: Row) -> str:
    name = markdown_escape(row.agent_name)
    links = _links(row)
    if not links:
        return name
    text = f"[{name}]({markdown_url(links[0][1])})"
    if len(links) > 1:
        text += f" ([{links[1][0]}]({markdown_url(links[1][1])}))"
    return text


def _method_lines() -> list[str]:
    return [
        f"Each cell is the interquartile mean (IQM: the mean of the middle 50%, `scipy.stats.trim_mean(x, 0.25)`) of a "
        f"metric across the submission's runs (seeds); the gold column adds its {CONFIDENCE:.0%} percentile bootstrap "
        f"confidence interval over runs ({N_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}; Agarwal et al. 2021, "
        "\"Deep Reinforcement Learning at the Edge of the Statistical Precipice\"). Rows are ranked by gold IQM. "
        "Sampled decoding at the protocol temperature on the env's test split, except *greedy gold*; "
        "*gold change* is the paired change against the SFT policy; KL is to the SFT policy in nats per response.",
    ]


def render_markdown(tables: dict[str, list[Row]]) -> str:
    """The leaderboard as Markdown: a header, then one table per env."""
    lines = [
        "# Leaderboard",
        "",
        "<!-- Generated by `rlhf-gym leaderboard build` from leaderboard/submissions/*.json; do not edit by hand. -->",
        "",
        *_method_lines(),
        "",
        f"Rebuild: `{REBUILD_COMMAND}` (writes this file and `index.html`, the sortable page with the gold-vs-KL plot).",
        "",
    ]
    if not tables:
        lines += ["No submissions yet.", ""]
    for env_id, rows in tables.items():
        protocols = ", ".join(f"`{markdown_escape(p)}`" for p in sorted({r.protocol_version for r in rows}))
        lines += [f"## {markdown_escape(env_id)}", "", f"Protocol: {protocols}.", ""]
        lines.append("| " + " | ".join(c.header for c in COLUMNS) + " |")
        lines.append("|" + "|".join("---:" if c.numeric else "---" for c in COLUMNS) + "|")
        for rank, row in enumerate(rows, start=1):
            cells = []
            for column in COLUMNS:
                if column.metric:
                    cells.append(metric_text(column, row.metrics[column.metric], column.with_ci))
                elif column.key == "agent":
                    cells.append(_markdown_agent(row))
                else:
                    cells.append(markdown_escape(_plain_cell(column, rank, row)))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


# HTML -------------------------------------------------------------------------------------
def _e(value: object) -> str:
    """``html.escape(str(value), quote=True)``: every string that reaches the page goes through here."""
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    return repr(float(value))


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #1b1b1b; background: #fff; }
h1 { margin-bottom: 0.2rem; }
p.method { max-width: 60rem; color: #444; line-height: 1.4; }
code { background: #f2f2f2; padding: 0 0.25rem; border-radius: 3px; }
div.scroll { overflow-x: auto; }
table.board { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
table.board th, table.board td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.55rem; white-space: nowrap; }
table.board td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.board tbody tr:nth-child(even) { background: #f7f9fc; }
table.board th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; color: #1b1b1b; }
table.board th[aria-sort="ascending"] button::after { content: " \\25B2"; }
table.board th[aria-sort="descending"] button::after { content: " \\25BC"; }
table.board .ci { color: #666; font-size: 0.85em; }
svg.plot { display: block; margin: 0.5rem 0 2rem; background: #fff; }
svg.plot text { font-size: 11px; fill: #333; }
svg.plot .axis { stroke: #333; stroke-width: 1; }
svg.plot .grid { stroke: #e5e5e5; stroke-width: 1; }
svg.plot .errorbar { stroke-width: 1.2; opacity: 0.6; }
svg.plot .point { stroke: #fff; stroke-width: 1; }
"""

# Sorting: rows are moved, never rebuilt (no HTML is made from data). A header click sorts
# by its column (numbers by data-value) and toggles the direction; `#sort=KEY&dir=asc|desc`
# or `?sort=KEY&dir=...` in the URL sorts every table that has that column on load.
_SCRIPT = """
(function () {
  "use strict";
  function keyOf(th) { return th.getAttribute("data-key"); }
  function sortValue(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell.getAttribute("data-value");
    if (raw === null) { raw = cell.textContent; }
    if (numeric) { var v = parseFloat(raw); return isNaN(v) ? -Infinity : v; }
    return raw.toLowerCase();
  }
  function sortTable(table, key, dir) {
    var headers = table.tHead.rows[0].cells, index = -1, i;
    for (i = 0; i < headers.length; i++) { if (keyOf(headers[i]) === key) { index = i; } }
    if (index < 0) { return false; }
    var numeric = headers[index].getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var order = rows.map(function (row, position) {
      return { row: row, position: position, value: sortValue(row, index, numeric) };
    });
    order.sort(function (a, b) {
      var c = numeric ? a.value - b.value : a.value.localeCompare(b.value);
      if (dir === "desc") { c = -c; }
      return c !== 0 ? c : a.position - b.position;
    });
    order.forEach(function (item) { body.appendChild(item.row); });
    for (i = 0; i < headers.length; i++) {
      headers[i].setAttribute("aria-sort", i === index ? (dir === "asc" ? "ascending" : "descending") : "none");
    }
    table.setAttribute("data-sort-key", key);
    table.setAttribute("data-sort-dir", dir);
    return true;
  }
  function fromUrl() {
    var text = (window.location.hash || "").replace(/^#/, "") + "&" + (window.location.search || "").replace(/^\\?/, "");
    var params = {};
    text.split("&").forEach(function (part) {
      var eq = part.indexOf("=");
      if (eq > 0) {
        try { params[decodeURIComponent(part.slice(0, eq))] = decodeURIComponent(part.slice(eq + 1)); } catch (e) { /* ignore */ }
      }
    });
    if (!params.sort) { return; }
    var dir = params.dir === "asc" ? "asc" : "desc";
    Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
      sortTable(table, params.sort, dir);
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.board"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var same = table.getAttribute("data-sort-key") === keyOf(th);
        var dir = same ? (table.getAttribute("data-sort-dir") === "asc" ? "desc" : "asc")
                       : (th.getAttribute("data-type") === "num" ? "desc" : "asc");
        sortTable(table, keyOf(th), dir);
      });
    });
  });
  window.addEventListener("hashchange", fromUrl);
  fromUrl();
  document.documentElement.setAttribute("data-sort-ready", "1");
}());
"""


def _html_agent(row: Row) -> str:
    links = _links(row)
    name = _e(row.agent_name)
    if not links:
        return name
    text = f'<a href="{_e(links[0][1])}" rel="noopener noreferrer">{name}</a>'
    if len(links) > 1:
        text += f' (<a href="{_e(links[1][1])}" rel="noopener noreferrer">{_e(links[1][0])}</a>)'
    return text


def _html_table(index: int, rows: Sequence[Row]) -> str:
    head = []
    for column in COLUMNS:
        sort = ' aria-sort="descending"' if column.key == "gold" else ' aria-sort="none"'
        kind = "num" if column.numeric else "text"
        button = f'<button type="button">{_e(column.header)}</button>'
        head.append(f'<th scope="col" data-key="{_e(column.key)}" data-type="{kind}"{sort}>{button}</th>')
    body = []
    for rank, row in enumerate(rows, start=1):
        cells = []
        for column in COLUMNS:
            if column.metric:
                estimate = row.metrics[column.metric]
                title = f"IQM {metric_text(column, estimate, False)}, 95% CI {metric_text(column, estimate, True).split(' ', 1)[1]}"
                text = _e(metric_text(column, estimate, False))
                if column.with_ci:
                    text += f' <span class="ci">[{_e(column.format(estimate.low))}, {_e(column.format(estimate.high))}]</span>'
                cells.append(f'<td class="num" data-value="{_e(_num(estimate.iqm))}" title="{_e(title)}">{text}</td>')
            elif column.key == "agent":
                cells.append(f'<td data-value="{_e(row.agent_name)}">{_html_agent(row)}</td>')
            elif column.numeric:
                value = {"rank": rank, "training_env_steps": row.training_env_steps, "runs": row.n_runs}[column.key]
                cells.append(f'<td class="num" data-value="{_e(value)}">{_e(_plain_cell(column, rank, row))}</td>')
            else:
                cells.append(f'<td data-value="{_e(_plain_cell(column, rank, row))}">{_e(_plain_cell(column, rank, row))}</td>')
        body.append(f'<tr data-source="{_e(row.source)}" data-rank="{rank}">{"".join(cells)}</tr>')
    return (
        f'<table class="board" id="board-{index}" data-sort-key="gold" data-sort-dir="desc">\n'
        f"<thead><tr>{''.join(head)}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"
    )


_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[low, high]`` (about ``count`` of them).

    >>> nice_ticks(0.0, 1.0)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    span = high - low
    if not span > 0:
        return [low]
    magnitude = 10.0 ** math.floor(math.log10(span / count))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if span / (m * magnitude) <= count)
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def _padded_range(values: Iterable[float]) -> tuple[float, float]:
    values = list(values)
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 if high > low else max(abs(low) * 0.1, 0.05)
    return low - pad, high + pad


def render_svg(rows: Sequence[Row], width: int = 720, height: int = 440) -> str:
    """Gold against KL, one labelled point per row with its 95% CIs as error bars (inline SVG)."""
    left, right, top, bottom = 64, 24, 16, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="gold against KL, one point per submission">'
    ]
    if not rows:
        parts.append("</svg>")
        return "".join(parts)
    kl = [r.metrics["kl"] for r in rows]
    gold = [r.metrics["gold"] for r in rows]
    x_low, x_high = _padded_range([v for e in kl for v in (e.low, e.high, e.iqm)])
    y_low, y_high = _padded_range([v for e in gold for v in (e.low, e.high, e.iqm)])

    def x_of(value: float) -> float:
        return left + (value - x_low) / (x_high - x_low) * plot_w

    def y_of(value: float) -> float:
        return top + (y_high - value) / (y_high - y_low) * plot_h

    for tick in nice_ticks(x_low, x_high):
        x = x_of(tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_e(f"{tick:g}")}</text>')
    for tick in nice_ticks(y_low, y_high):
        y = y_of(tick)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(f"{tick:g}")}</text>')
    parts.append(f'<rect class="axis" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none"/>')
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">KL to the SFT policy (nats per response, IQM)</text>'
    )
    parts.append(
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" transform="rotate(-90 14 {top + plot_h / 2:.1f})">gold (IQM)</text>'
    )
    for i, (row, k, g) in enumerate(zip(rows, kl, gold)):
        colour = _PALETTE[i % len(_PALETTE)]
        x, y = x_of(k.iqm), y_of(g.iqm)
        label = row.agent_name if len(row.agent_name) <= 40 else row.agent_name[:39] + "\u2026"
        title = f"{row.agent_name}: gold {g.iqm:.3f} [{g.low:.3f}, {g.high:.3f}], KL {k.iqm:.2f} [{k.low:.2f}, {k.high:.2f}]"
        parts.append(f'<g class="submission" data-source="{_e(row.source)}">')
        parts.append(f"<title>{_e(title)}</title>")
        parts.append(f'<line class="errorbar" stroke="{colour}" x1="{x_of(k.low):.1f}" y1="{y:.1f}" x2="{x_of(k.high):.1f}" y2="{y:.1f}"/>')
        parts.append(f'<line class="errorbar" stroke="{colour}" x1="{x:.1f}" y1="{y_of(g.low):.1f}" x2="{x:.1f}" y2="{y_of(g.high):.1f}"/>')
        parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}"/>')
        anchor = "end" if x > left + plot_w * 0.7 else "start"
        dx = -8 if anchor == "end" else 8
        parts.append(f'<text class="label" x="{x + dx:.1f}" y="{y - 7:.1f}" text-anchor="{anchor}">{_e(label)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(tables: dict[str, list[Row]]) -> str:
    """The leaderboard as one self-contained HTML page (inline CSS, JS and SVG only)."""
    method = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(_method_lines()[0])))
    sections = []
    for index, (env_id, rows) in enumerate(tables.items()):
        protocols = ", ".join(f"<code>{_e(p)}</code>" for p in sorted({r.protocol_version for r in rows}))
        sections.append(
            f'<section id="env-{index}">\n<h2>{_e(env_id)}</h2>\n<p>Protocol: {protocols}. '
            f"Click a column header to sort; click again to reverse.</p>\n"
            f'<div class="scroll">{_html_table(index, rows)}</div>\n'
            f"<h3>Gold against KL</h3>\n{render_svg(rows)}\n</section>"
        )
    if not sections:
        sections.append("<p>No submissions yet.</p>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">\n"
        "<title>rlhf-gym leaderboard</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
        "<h1>rlhf-gym leaderboard</h1>\n"
        f'<p class="method">{method}</p>\n'
        '<p class="method">Generated from <code>leaderboard/submissions/*.json</code>; '
        f"rebuild with <code>{_e(REBUILD_COMMAND)}</code>.</p>\n"
        + "\n".join(sections)
        + f"\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


# Entry points -----------------------------------------------------------------------------
def write_pages(tables: dict[str, list[Row]], out_dir: Path) -> tuple[Path, Path]:
    """Write ``README.md`` and ``index.html`` of ``tables`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    readme, page = out_dir / "README.md", out_dir / "index.html"
    readme.write_text(render_markdown(tables), encoding="utf-8")
    page.write_text(render_html(tables), encoding="utf-8")
    return readme, page


def build(submissions_dir: Path, out_dir: Path) -> None:
    """Write ``out_dir/README.md`` and ``out_dir/index.html`` from ``submissions_dir/*.json``.

    Raises `SubmissionError` (naming the file) for a file that is not JSON or lacks a key
    the tables read, and `FileNotFoundError` when ``submissions_dir`` is not a folder.
    """
    write_pages(load_rows(Path(submissions_dir)), Path(out_dir))


def build_main(submissions: str | None = None, out: str | None = None) -> None:
    """Build the leaderboard tables: README.md and index.html from the submissions.

    Args:
        submissions: the folder of submission ``*.json`` files (default: the package's
            ``leaderboard/submissions``).
        out: where README.md and index.html are written (default: the package's
            ``leaderboard/``).
    """
    submissions_dir = Path(submissions) if submissions else DEFAULT_SUBMISSIONS
    try:
        tables = load_rows(submissions_dir)
    except (SubmissionError, FileNotFoundError) as error:
        raise SystemExit(str(error)) from None
    readme, page = write_pages(tables, Path(out) if out else DEFAULT_OUT)
    count = sum(len(rows) for rows in tables.values())
    print(f"read {count} submission(s) for {len(tables)} env(s) from {submissions_dir}")
    for env_id, rows in tables.items():
        best = rows[0]
        print(f"  {env_id}: {len(rows)} row(s); first: {best.agent_name} (gold IQM {best.metrics['gold'].iqm:.3f})")
    print(f"wrote {readme}")
    print(f"wrote {page}")

"""The bench's outputs: the JSON file of a run, and the table in docs/performance.md.

The table lives between ``<!-- bench:start -->`` and ``<!-- bench:end -->``; a run replaces
that section and leaves the rest of the page alone. The section also holds, in an HTML
comment, the figures it shows (per device type and part), so a run of some parts replaces
those parts' rows and keeps the others with their own date, command and machine. A part
that was skipped keeps its earlier rows; a part that failed shows its error.

Every part's result may give ``headline``: a list of rows ``{"figure": str, "ratio": float
or None, "value": str, "goal": str or None, "met": bool or None, "detail": str}``. A part
without one gets a row per top-level figure whose name holds "ratio"; a failed part, its error.

Example:
    >>> text = replace_section("# Title\\n\\nIntro.\\n", "table v1")
    >>> text = replace_section(text, "table v2")
    >>> text.count(START), "table v1" in text, text.startswith("# Title")
    (1, False, True)
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
_DATA = re.compile(r"<!-- bench:data (.*?) -->", re.DOTALL)

PART_TITLES = {
    "p1": "P1 env bookkeeping",
    "p2": "P2 rollout",
    "p3": "P3 training",
    "p4": "P4 learning per second",
    "memory": "Memory",
}

INTRO = """# Performance

Every speed claim of the project, measured by one command, `rlhf-gym bench`, on the machine
it runs on. The table below is written by that command; do not edit it by hand.

## How to run

```bash
rlhf-gym bench --quick                  # every part at small sizes: under 5 minutes on 2 CPU cores
rlhf-gym bench                          # the full sizes (P4 included)
rlhf-gym bench --parts p1 p2 --json bench.json   # some parts; all figures also as JSON
rlhf-gym bench --device cuda            # on a GPU (P1 up to N=4096; --bf16 for P2 under bf16 autocast)
```

`--threads` sets torch's CPU threads (default 2), `--doc PATH` the page to update (default
this one), `--no-doc` leaves it alone. Only the parts that ran replace their rows.

## How to read a ratio

Each comparison runs its two sides in the same process, alternately (A B A B ...), after a
warm-up, and reports the **median of at least five pairwise ratios** rate(A) / rate(B).
The machines are shared and noisy: a competing process slows both runs of a pair alike, so
a pair's ratio survives where a single time does not. A ratio above 1 means the first side
(ours) is faster. Absolute rates (steps or tokens per second) are given for scale only:
they move with the machine's load; the ratios are the figures.

## What each comparison measures

- **P1, env bookkeeping**: sub-env steps per second with uniform random actions,
  `TokenVectorEnv` (`gym.make_vec` of the registered env) against Gymnasium's
  `SyncVectorEnv` of N single envs (`vectorization_mode="sync"`, `SAME_STEP` autoreset),
  both with the same reward-model object and the same actions. First with a constant
  reward (zeros) and no gold judge, so only the env's own work is timed (goal: at least
  100x at N=256; the benchmark's pool of 4,096 prompts recurs, so most resets reuse their
  prompt's token ids from the env's cache, and the hit rates are reported), then the same
  with the cache off on both sides (every reset tokenises, as with prompts that never
  recur), then with the shipped preference model and gold judge, with the share of
  time each side spends scoring. With a ~1.9k-token vocabulary a random episode nearly
  always ends by truncation at `max_new_tokens`; the sub-envs are staggered first so that
  episode ends (and resets) spread evenly over the timed steps. On a GPU, also the share
  of a step with the shipped reward that is the env's own bookkeeping, at N=4096.
- **P2, rollout**: new tokens per second (up to and including EOS) of a rollout through
  the env (`collect_episodes` with the SFT policy, rewards and gold included, sampling as
  the agents train: one uniform per row and token, inverting the row's CDF) against what
  a user writes by hand: `model.generate()` with a KV cache at the same temperature and
  `max_new_tokens` on the same prompts, then one batched reward-model call and one gold
  call. Goal: at least 1.0 on CPU and GPU. Also the ratio with the scoring time taken out
  of both sides.
- **P3, training**: seconds per training iteration of our PPO, RLOO and GRPO against TRL's
  trainers at matched settings, each side in its own worker process.
- **P4, learning per second**: each trainer trained for the same wall-clock budget, the
  paired gold change of its snapshots against the SFT policy plotted against seconds.
  Runs only without `--quick`.
- **Memory**: the peak RSS of the README's main job (`rlhf-gym train --agent ppo ...`, a
  short run with `--quick`), and the RSS of a long run of random episodes through the env,
  whose slope must stay flat.

## Results
"""


def machine_info(device: str) -> dict[str, Any]:
    """What the figures were measured on: cores, CPU, torch, the device's name."""
    import torch

    device_ = torch.device(device)
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu": _cpu_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": str(device_),
        "device_name": _cpu_name(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["cores_usable"] = len(os.sched_getaffinity(0))
    if device_.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device_)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(results: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``results`` (the whole dict, machine info included) as indented JSON; returns the path."""
    path = Path(path)
    _write_atomically(path, json.dumps(results, indent=2, default=str) + "\n")
    return path


def replace_section(text: str, section: str) -> str:
    """``text`` with everything between the markers replaced by ``section`` (appended, with the markers, if absent).

    Raises:
        ValueError: the markers are there but not once each, in order.
    """
    starts, ends = text.count(START), text.count(END)
    if starts == ends == 0:
        return text.rstrip("\n") + f"\n\n{START}\n{section.strip()}\n{END}\n"
    if starts != 1 or ends != 1 or text.index(START) > text.index(END):
        raise ValueError(f"the page must hold {START} once, then {END} once; found {starts} and {ends}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{section.strip()}\n{END}{tail}"


def stored_entries(text: str) -> dict[str, Any]:
    """The figures stored in the page's section (``{"cpu:p1": entry, ...}``); empty when there are none."""
    if START not in text or END not in text:
        return {}
    section = text.split(START, 1)[1].split(END, 1)[0]
    match = _DATA.search(section)
    return json.loads(match.group(1)) if match else {}


def entries_of(results: Mapping[str, Any]) -> dict[str, Any]:
    """The page's entries for the parts of one run that ran (skipped parts give none)."""
    device_type = str(results["device"]).split(":")[0]
    entries = {}
    for part, result in results["parts"].items():
        if "skipped" in result:
            continue
        entries[f"{device_type}:{part}"] = {
            "part": part,
            "device": results["device"],
            "date": results["date"],
            "command": results["command"],
            "machine": results["machine"],
            "rows": rows_of(part, result),
        }
    return entries


def rows_of(part: str, result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A part's table rows: its ``headline``, its error, or its top-level ratios."""
    title = PART_TITLES.get(part, part)
    if "error" in result:
        return [{"figure": title, "ratio": None, "value": "not measured", "goal": None, "met": None, "detail": result["error"]}]
    if result.get("headline"):
        return list(result["headline"])
    rows = []
    for key, value in result.items():  # no headline: its top-level ratios
        if "ratio" in key and isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append({"figure": f"{title}: {key}", "ratio": float(value), "value": f"{value:.3g}x", "goal": None, "met": None,
                         "detail": ""})
    return rows or [{"figure": title, "ratio": None, "value": "see the JSON", "goal": None, "met": None, "detail": ""}]


def render_section(entries: Mapping[str, Any]) -> str:
    """The table (rows with a ratio first, in part order), the machines, and the stored figures."""
    if not entries:
        return "No figures yet: run `rlhf-gym bench --quick` (or `rlhf-gym bench`) from the repository root."
    order = list(PART_TITLES)

    def part_rank(key: str) -> tuple[int, str]:
        part = entries[key]["part"]
        return (order.index(part) if part in order else len(order), key)

    machines: list[dict[str, Any]] = []
    rows = []
    for key in sorted(entries, key=part_rank):
        entry = entries[key]
        if entry["machine"] not in machines:
            machines.append(entry["machine"])
        label = f"M{machines.index(entry['machine']) + 1}"
        for row in entry["rows"]:
            rows.append((row, entry, label))
    rows.sort(key=lambda item: item[0].get("ratio") is None)  # stable: ratios first, each group in part order
    lines = [
        "| Figure | Ratio or value | Goal | Met | Detail | Device | Machine | Date | Command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row, entry, label in rows:
        met = {True: "yes", False: "**no**", None: ""}[row.get("met")]
        cells = [row["figure"], f"**{row['value']}**", row.get("goal") or "", met, row.get("detail") or "",
                 entry["device"], label, str(entry["date"])[:10], f"`{entry['command']}`"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append("")
    for index, machine in enumerate(machines, 1):
        usable = f" ({machine['cores_usable']} usable)" if machine.get("cores_usable") not in (None, machine.get("cores")) else ""
        lines.append(f"- M{index}: {machine.get('cores')} cores{usable}, {machine.get('cpu')}; {machine.get('device')}: "
                     f"{machine.get('device_name')}; torch {machine.get('torch')}, Python {machine.get('python')}, "
                     f"{machine.get('platform')}")
    data = json.dumps(dict(entries), sort_keys=True, separators=(",", ":"), default=str).replace(">", "\\u003e")
    lines += ["", f"<!-- bench:data {data} -->"]
    return "\n".join(lines)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def update_doc(results: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Replace the parts of ``results`` that ran in the page's table (created with `INTRO` if missing)."""
    path = Path(path)
    text = path.read_text() if path.exists() else INTRO
    entries = {**stored_entries(text), **entries_of(results)}
    _write_atomically(path, replace_section(text, render_section(entries)))
    return path


def _write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    staging.write_text(text)
    os.replace(staging, path)


__all__ = [
    "END",
    "INTRO",
    "START",
    "machine_info",
    "render_section",
    "replace_section",
    "rows_of",
    "stored_entries",
    "update_doc",
    "write_json",
]

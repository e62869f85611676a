"""The leaderboard page's gold-against-KL plot: stable agent markers, label placement, inline SVG.

Each agent's colour and shape come from a hash of its name (`agent_marker`), so adding rows
never recolours anyone. Every point is labelled; `place_labels` puts each label beside its
point, further out with a dashed leader line when the near spots are taken, or in a column
beside the plot, so that no two labels (nor a label and a point) overprint. Label widths are
bounded from above with a monospace font, so the placement needs no browser to measure text.
Every string from a submission goes through ``html.escape(..., quote=True)``.
"""

from __future__ import annotations

import hashlib
import html
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rlhf_gym.leaderboard.intervals import CONFIDENCE, Interval


class PlotRow(Protocol):
    """What the plot reads of a leaderboard row (`rlhf_gym.leaderboard.build.Row`)."""

    agent_name: str
    source: str
    score: Interval  # the ranked metric (gold, or the proxy): the mean and its bootstrap interval
    metrics: dict[str, Any]  # "kl": the KL's mean and range over runs (.mean, .min, .max)


def escape(value: object) -> str:
    """``html.escape(str(value), quote=True)``: every string that reaches the page (plot and table) goes through here."""
    return html.escape(str(value), quote=True)


PALETTE = (  # Kelly's colours of maximum contrast, without white and black (Kelly 1965)
    "#f3c300", "#875692", "#f38400", "#a1caf1", "#be0032", "#c2b280", "#848482", "#008856", "#e68fac", "#0067a5",
    "#f99379", "#604e97", "#f6a600", "#b3446c", "#dcd300", "#882d17", "#8db600", "#654522", "#e25822", "#2b3d26",
)


SHAPES = ("circle", "square", "diamond", "triangle")


def agent_marker(name: str) -> tuple[str, str]:
    """The agent's (colour, shape): a stable hash of its name into `PALETTE` x `SHAPES`.

    It depends on the name alone, so an agent keeps its marker whatever rows come and go.
    Two agents can still draw the same marker (1 chance in 80 per pair); every point is
    labelled, so the marker only helps the eye.
    """
    digest = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
    return PALETTE[digest % len(PALETTE)], SHAPES[digest // len(PALETTE) % len(SHAPES)]


def marker_svg(name: str, x: float, y: float, radius: float, css_class: str) -> str:
    """The agent's marker centred at ``(x, y)`` as an SVG element (used by the plot and the table's swatches)."""
    colour, shape = agent_marker(name)
    attrs = f'class="{css_class}" fill="{colour}"'
    if shape == "circle":
        return f'<circle {attrs} cx="{x:.1f}" cy="{y:.1f}" r="{radius:g}"/>'
    if shape == "square":
        side = radius * 1.7
        return f'<rect {attrs} x="{x - side / 2:.1f}" y="{y - side / 2:.1f}" width="{side:.1f}" height="{side:.1f}"/>'
    r = radius * 1.25
    if shape == "diamond":
        corners: tuple[tuple[float, float], ...] = ((x, y - r), (x + r, y), (x, y + r), (x - r, y))
    else:
        corners = ((x, y - r), (x + r, y + r * 0.8), (x - r, y + r * 0.8))
    return f'<polygon {attrs} points="{" ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in corners)}"/>'


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


# Plot labels ------------------------------------------------------------------------------
LABEL_CHARS = 32  # a longer agent name is cut to this many columns (with an ellipsis); the hover title has it whole
LABEL_COLUMN_PX = 6.8  # an upper bound on one column's advance: monospace fonts advance 0.6 em (6.6 px at 11 px)
LABEL_HEIGHT_PX = 15.0  # an upper bound on a text box's height at 11 px (DejaVu Sans Mono: 12.8 px)
LABEL_BASELINE_PX = 11.5  # from the top of a label's box to its baseline
LABEL_GAP_PX = 2.0  # the least space between two labels, or a label and a point
POINT_RADIUS = 5.0
MARKER_HALF = POINT_RADIUS * 1.25  # half the width and height of the largest marker (`marker_svg`)
_RINGS = (9.0, 18.0, 30.0, 46.0, 66.0, 92.0)  # distances from the point tried in turn; beyond the first, a leader line
_DIRECTIONS = ((1, 0), (-1, 0), (1, -1), (1, 1), (-1, -1), (-1, 1), (0, -1), (0, 1))  # E, W, NE, SE, NW, SW, N, S


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in SVG pixels: ``x0 <= x1``, ``y0 <= y1`` (y grows downwards)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box, gap: float = 0.0) -> bool:
        """Whether the boxes come closer than ``gap``."""
        return not (self.x1 + gap <= other.x0 or other.x1 + gap <= self.x0 or self.y1 + gap <= other.y0 or other.y1 + gap <= self.y0)

    def inside(self, other: Box) -> bool:
        return other.x0 <= self.x0 and self.x1 <= other.x1 and other.y0 <= self.y0 and self.y1 <= other.y1

    def nearest(self, x: float, y: float) -> tuple[float, float]:
        """The point of the box nearest to ``(x, y)``."""
        return min(max(x, self.x0), self.x1), min(max(y, self.y0), self.y1)


def label_text(name: str) -> str:
    """An agent name as its plot label: at most `LABEL_CHARS` columns (wide characters count two)."""
    if _columns(name) <= LABEL_CHARS:
        return name
    cut = ""
    for char in name:
        if _columns(cut + char) > LABEL_CHARS - 1:
            break
        cut += char
    return cut + "\u2026"


def _columns(text: str) -> int:
    """Monospace columns of ``text``: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def label_width(text: str) -> float:
    """An upper bound on the rendered width of a plot label, in pixels."""
    return _columns(text) * LABEL_COLUMN_PX


@dataclass(frozen=True)
class Placement:
    box: Box  # the label's box (its text starts at x0, baseline y0 + LABEL_BASELINE_PX)
    leader: bool  # drawn with a line from the point to the box


def _candidate(x: float, y: float, width: float, distance: float, dx: int, dy: int) -> Box:
    """The label box at ``distance`` from the point in direction (dx, dy)."""
    h = LABEL_HEIGHT_PX
    step = distance if dx == 0 or dy == 0 else distance * 0.7071
    x0 = x + step if dx > 0 else x - step - width if dx < 0 else x - width / 2
    y0 = y + step if dy > 0 else y - step - h if dy < 0 else y - h / 2
    return Box(x0, y0, x0 + width, y0 + h)


def place_labels(points: Sequence[tuple[float, float]], widths: Sequence[float], area: Box, column_x: float) -> list[Placement]:
    """Where each point's label goes so that no two labels overlap and no label covers a point.

    A greedy pass in the given order (the ranking): each label takes the first free spot
    among eight directions around its point, at growing distances (beyond the nearest, with
    a leader line), inside ``area``. A label with no free spot goes to a column at
    ``column_x`` (right of the plot), stacked in the order of the points' heights, with a
    leader line. Deterministic: the same points give the same placements.
    """
    obstacles = [Box(x - MARKER_HALF, y - MARKER_HALF, x + MARKER_HALF, y + MARKER_HALF) for x, y in points]
    placed: dict[int, Placement] = {}
    boxes: list[Box] = []
    homeless = []
    for i, ((x, y), width) in enumerate(zip(points, widths)):
        spot = next(
            (
                (box, distance)
                for distance in _RINGS
                for dx, dy in _DIRECTIONS
                if (box := _candidate(x, y, width, distance, dx, dy)).inside(area)
                and not any(box.overlaps(other, LABEL_GAP_PX) for other in boxes)
                and not any(box.overlaps(point, LABEL_GAP_PX) for point in obstacles)
            ),
            None,
        )
        if spot is None:
            homeless.append(i)
            continue
        placed[i] = Placement(spot[0], leader=spot[1] > _RINGS[0])
        boxes.append(spot[0])
    bottom = -math.inf
    for i in sorted(homeless, key=lambda j: (points[j][1], j)):
        y0 = max(points[i][1] - LABEL_HEIGHT_PX / 2, bottom + LABEL_GAP_PX)
        placed[i] = Placement(Box(column_x, y0, column_x + widths[i], y0 + LABEL_HEIGHT_PX), leader=True)
        bottom = y0 + LABEL_HEIGHT_PX
    return [placed[i] for i in range(len(points))]


def render_svg(rows: Sequence[PlotRow], score: str = "gold") -> str:
    """The rows' score against KL, one labelled point per row (inline SVG).

    Vertical bars: the score's interval (bootstrap over seeds and test posts); horizontal
    bars: the KL range over runs. Each point is its agent's marker (`agent_marker`).
    ``score`` names the score in the labels: ``"gold"``, or ``"proxy"`` for an env without
    a gold judge.
    """
    left, top, bottom, plot_w, plot_h = 64.0, 16.0, 48.0, 760.0, 420.0
    area = Box(left, top, left + plot_w, top + plot_h)
    aria = f"{score} against KL, one point per submission"
    if not rows:
        return f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="0" height="0" role="img" aria-label="{aria}"></svg>'
    kl = [r.metrics["kl"] for r in rows]
    gold = [r.score for r in rows]
    x_low, x_high = _padded_range([v for e in kl for v in (e.min, e.max, e.mean)])
    y_low, y_high = _padded_range([v for e in gold for v in (e.low, e.high, e.mean)])

    def x_of(value: float) -> float:
        return left + (value - x_low) / (x_high - x_low) * plot_w

    def y_of(value: float) -> float:
        return top + (y_high - value) / (y_high - y_low) * plot_h

    points = [(round(x_of(k.mean), 1), round(y_of(g.mean), 1)) for k, g in zip(kl, gold)]
    labels = [label_text(row.agent_name) for row in rows]
    widths = [label_width(text) for text in labels]
    column_x = left + plot_w + 16
    placements = place_labels(points, widths, Box(area.x0 + 2, area.y0 + 2, area.x1 - 2, area.y1 - 2), column_x)
    width = math.ceil(max([left + plot_w + 24] + [p.box.x1 + 8 for p in placements]))
    height = math.ceil(max([top + plot_h + bottom] + [p.box.y1 + 8 for p in placements]))
    parts = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{aria}">'
    ]
    for tick in nice_ticks(x_low, x_high):
        x = x_of(tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{escape(f"{tick:g}")}</text>')
    for tick in nice_ticks(y_low, y_high):
        y = y_of(tick)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(f"{tick:g}")}</text>')
    parts.append(f'<rect class="axis" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none"/>')
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 38}" text-anchor="middle">'
        "KL to the SFT policy (nats per response): mean, bar: range over runs</text>"
    )
    parts.append(
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" transform="rotate(-90 14 {top + plot_h / 2:.1f})">'
        f"{escape(score)}: mean, bar: {CONFIDENCE:.0%} bootstrap interval</text>"
    )
    for row, k, g, (x, y), label, placement in zip(rows, kl, gold, points, labels, placements):
        colour = agent_marker(row.agent_name)[0]
        title = (f"{row.agent_name}: {score} {g.mean:.3f} [{g.low:.3f}, {g.high:.3f}] ({CONFIDENCE:.0%} bootstrap interval), "
                 f"KL {k.mean:.2f} (range over runs [{k.min:.2f}, {k.max:.2f}])")
        box = placement.box
        parts.append(f'<g class="submission" data-source="{escape(row.source)}">')
        parts.append(f"<title>{escape(title)}</title>")
        parts.append(f'<line class="errorbar" stroke="{colour}" x1="{x_of(k.min):.1f}" y1="{y:.1f}" x2="{x_of(k.max):.1f}" y2="{y:.1f}"/>')
        parts.append(f'<line class="errorbar" stroke="{colour}" x1="{x:.1f}" y1="{y_of(g.low):.1f}" x2="{x:.1f}" y2="{y_of(g.high):.1f}"/>')
        if placement.leader:
            end_x, end_y = box.nearest(x, y)
            parts.append(f'<line class="leader" stroke="{colour}" x1="{x:.1f}" y1="{y:.1f}" x2="{end_x:.1f}" y2="{end_y:.1f}"/>')
        parts.append(marker_svg(row.agent_name, x, y, POINT_RADIUS, "point"))
        parts.append(f'<text class="label" x="{box.x0:.1f}" y="{box.y0 + LABEL_BASELINE_PX:.1f}">{escape(label)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)

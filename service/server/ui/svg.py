"""Inline SVG charts drawn in Python: loss curves, the confusion matrix heat map, predicted vs actual.

No script and no ``style=`` attribute (the dashboard's Content-Security-Policy
forbids inline styles): colours come from classes in ``static/ui.css`` and, for
the heat map's shades, from ``fill-opacity`` presentation attributes. Every text
is escaped here, so a class label like ``<script>`` stays text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from markupsafe import Markup

WIDTH, HEIGHT = 480, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36


def _num(value: float) -> str:
    return f"{value:.4g}"


def _number(value: Any) -> float:
    """``value`` as a float; NaN for anything that is not a number (a manifest or job record may hold null)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _fraction(lo: float, hi: float) -> Callable[[float], float]:
    """Where a finite value lies between finite ``lo`` and ``hi``, from 0 to 1 (0.5 for them all when they are
    equal). Halves keep the span of any two finite floats finite: 1e308 - (-1e308) would overflow."""
    span = hi / 2 - lo / 2
    if not span > 0:
        return lambda v: 0.5
    return lambda v: (v / 2 - lo / 2) / span


def _runs(values: Sequence[float]) -> list[list[tuple[int, float]]]:
    """The finite values with their indices, in runs without a gap: a NaN or an infinity breaks a curve."""
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if math.isfinite(v):
            runs[-1].append((i, v))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _nothing_to_draw(title: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT // 4}" role="img" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<text class="label" x="{LEFT}" y="{HEIGHT // 8}">no finite value to draw</text></svg>'
    )


def loss_chart(series: Mapping[str, Sequence[Any]], title: str, last_epoch: int | None = None) -> Markup:
    """One polyline per named series, one point per epoch, with axes, ticks and a legend; ``last_epoch``
    labels the x axis's end when the points are every k-th epoch rather than each one. Values that are not
    finite (a diverged training) are left out of the curve and shown in the legend as they are."""
    drawn = {str(k): [_number(v) for v in vals] for k, vals in series.items() if isinstance(vals, list | tuple)}
    drawn = {k: vals for k, vals in drawn.items() if vals}
    if not drawn:
        return Markup("")
    values = [v for vals in drawn.values() for v in vals if math.isfinite(v)]
    if not values:
        return _nothing_to_draw(title)
    lo, hi = min(values), max(values)
    fraction = _fraction(lo, hi)
    epochs = max(len(vals) for vals in drawn.values())
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (epochs - 1) if epochs > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - fraction(v))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t-{id(drawn)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<title id="t-{id(drawn)}">{escape(title)}</title>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
    ]
    for v in sorted({lo, lo / 2 + hi / 2, hi}):
        parts.append(f'<text class="tick" x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{_num(v)}</text>')
    for i in sorted({0, epochs - 1}):
        label = last_epoch if i == epochs - 1 and isinstance(last_epoch, int) else i + 1
        parts.append(f'<text class="tick" x="{x(i):.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{label}</text>')
    parts.append(f'<text class="label" x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle">epoch</text>')
    for n, (key, vals) in enumerate(drawn.items()):
        for run in _runs(vals):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            if len(run) == 1:  # one point alone draws no line: a dot
                parts.append(f'<circle class="point s{n}" cx="{x(run[0][0]):.1f}" cy="{y(run[0][1]):.1f}" r="2.5"/>')
            parts.append(f'<polyline class="series s{n}" data-series="{escape(key)}" points="{points}"/>')
        parts.append(
            f'<text class="legend s{n}" x="{LEFT + 8}" y="{TOP + 14 + 14 * n}">{escape(key)} ({_num(vals[-1])})</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def confusion_matrix(labels: Sequence[Any], matrix: Sequence[Sequence[int]], title: str) -> Markup:
    """A heat map: one rect per (true, predicted) cell, darker for more rows, each with its count as text
    (a cell that holds no count shows 0; rows and columns beyond the labels are left out)."""
    n = len(labels)
    if n == 0:
        return Markup("")
    cell, margin = 40, 90
    size = margin + cell * n
    matrix = [[c if isinstance(c, int) and not isinstance(c, bool) else 0 for c in row[:n]] for row in matrix[:n]]
    peak = max((c for row in matrix for c in row), default=0) or 1
    parts = [
        f'<svg class="matrix" viewBox="0 0 {size + 10} {size + 10}" role="img" aria-labelledby="m-{id(matrix)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<title id="m-{id(matrix)}">{escape(title)}: rows are true classes, columns predicted classes</title>',
    ]
    for j, label in enumerate(labels):
        text = escape(str(label))
        parts.append(
            f'<text class="tick" x="{margin + cell * j + cell / 2}" y="{margin - 6}" text-anchor="middle">{text}</text>'
        )
        parts.append(
            f'<text class="tick" x="{margin - 6}" y="{margin + cell * j + cell / 2 + 4}"'
            f' text-anchor="end">{text}</text>'
        )
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            px, py = margin + cell * j, margin + cell * i
            name = f"true {escape(str(labels[i]))}, predicted {escape(str(labels[j]))}: {count}"
            parts.append(
                f'<g><title>{name}</title><rect class="cell" x="{px}" y="{py}" width="{cell}" height="{cell}"'
                f' fill-opacity="{0.08 + 0.92 * count / peak:.3f}"/>'
                f'<text class="count{" dark" if count / peak > 0.5 else ""}" x="{px + cell / 2}"'
                f' y="{py + cell / 2 + 4}" text-anchor="middle">{count}</text></g>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def scatter(actual: Sequence[Any], predicted: Sequence[Any], title: str) -> Markup:
    """Predicted against actual, with the y = x diagonal; pairs that are not both finite are left out."""
    pairs = [(_number(a), _number(p)) for a, p in zip(actual, predicted, strict=False)]  # a short list: what pairs
    pairs = [(a, p) for a, p in pairs if math.isfinite(a) and math.isfinite(p)]
    if not pairs:
        return Markup("")
    lo, hi = min(min(a, p) for a, p in pairs), max(max(a, p) for a, p in pairs)
    fraction = _fraction(lo, hi)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(v: float) -> float:
        return LEFT + plot_w * fraction(v)

    def sy(v: float) -> float:
        return TOP + plot_h * (1 - fraction(v))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
        f'<line class="diagonal" x1="{sx(lo):.1f}" y1="{sy(lo):.1f}" x2="{sx(hi):.1f}" y2="{sy(hi):.1f}"/>',
        f'<text class="label" x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle">actual</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end">{_num(hi)}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">{_num(lo)}</text>',
    ]
    parts += [f'<circle class="point" cx="{sx(a):.1f}" cy="{sy(p):.1f}" r="2.5"/>' for a, p in pairs]
    parts.append("</svg>")
    return Markup("".join(parts))


BARS_SHOWN = 20  # features a bar chart draws, the largest first


def bar_chart(values: Mapping[str, Any], title: str) -> Markup:
    """Horizontal bars of non-negative values by name, largest first (at most ``BARS_SHOWN`` of them, the chart
    saying how many it leaves out), each labelled with its value; values that are not finite are left out."""
    finite = [(str(k), _number(v)) for k, v in values.items()]
    bars = sorted(((k, v) for k, v in finite if math.isfinite(v) and v >= 0), key=lambda kv: -kv[1])
    if not bars:
        return _nothing_to_draw(title)
    left_out = len(bars) - BARS_SHOWN
    bars = bars[:BARS_SHOWN]
    row, margin, width = 18, 130, WIDTH - 130 - 60
    height = TOP + row * len(bars) + (row if left_out > 0 else 0) + 8
    peak = bars[0][1] or 1.0
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (name, v) in enumerate(bars):
        y = TOP + row * i
        shown = name if len(name) <= 20 else name[:19] + "…"
        parts.append(
            f"<g><title>{escape(name)}: {_num(v)}</title>"
            f'<text class="tick" x="{margin - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end">{escape(shown)}</text>'
            f'<rect class="bar" x="{margin}" y="{y + 2}" width="{width * v / peak:.1f}" height="{row - 4}"/>'
            f'<text class="tick" x="{margin + width * v / peak + 4:.1f}" y="{y + row / 2 + 4:.1f}">{_num(v)}</text></g>'
        )
    if left_out > 0:
        parts.append(
            f'<text class="label" x="{margin}" y="{TOP + row * len(bars) + row / 2 + 4}">'
            f"and {left_out} more feature{'s' if left_out > 1 else ''} below these</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))

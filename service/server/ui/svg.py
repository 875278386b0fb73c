"""Inline SVG charts drawn in Python: loss curves, the confusion matrix heat map, predicted vs actual.

No script and no ``style=`` attribute (the dashboard's Content-Security-Policy
forbids inline styles): colours come from classes in ``static/ui.css`` and, for
the heat map's shades, from ``fill-opacity`` presentation attributes. Every text
is escaped here, so a class label like ``<script>`` stays text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from markupsafe import Markup

WIDTH, HEIGHT = 480, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36


def _num(value: float) -> str:
    return f"{value:.4g}"


def loss_chart(series: Mapping[str, Sequence[float]], title: str, last_epoch: int | None = None) -> Markup:
    """One polyline per named series, one point per epoch, with axes, ticks and a legend; ``last_epoch``
    labels the x axis's end when the points are every k-th epoch rather than each one."""
    drawn = {k: [float(v) for v in vals] for k, vals in series.items() if vals}
    if not drawn:
        return Markup("")
    values = [v for vals in drawn.values() for v in vals]
    lo, hi = min(values), max(values)
    if hi == lo:
        hi = lo + 1.0
    epochs = max(len(vals) for vals in drawn.values())
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (epochs - 1) if epochs > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="t-{id(drawn)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f'<title id="t-{id(drawn)}">{escape(title)}</title>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
    ]
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(f'<text class="tick" x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{_num(v)}</text>')
    for i in sorted({0, epochs - 1}):
        label = last_epoch if i == epochs - 1 and last_epoch is not None else i + 1
        parts.append(f'<text class="tick" x="{x(i):.1f}" y="{TOP + plot_h + 14}" text-anchor="middle">{label}</text>')
    parts.append(f'<text class="label" x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle">epoch</text>')
    for n, (key, vals) in enumerate(drawn.items()):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vals))
        parts.append(f'<polyline class="series s{n}" data-series="{escape(key)}" points="{points}"/>')
        parts.append(
            f'<text class="legend s{n}" x="{LEFT + 8}" y="{TOP + 14 + 14 * n}">{escape(key)} ({_num(vals[-1])})</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def confusion_matrix(labels: Sequence[Any], matrix: Sequence[Sequence[int]], title: str) -> Markup:
    """A heat map: one rect per (true, predicted) cell, darker for more rows, each with its count as text."""
    n = len(labels)
    if n == 0:
        return Markup("")
    cell, margin = 40, 90
    size = margin + cell * n
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


def scatter(actual: Sequence[float], predicted: Sequence[float], title: str) -> Markup:
    """Predicted against actual, with the y = x diagonal."""
    if not actual:
        return Markup("")
    lo, hi = min(min(actual), min(predicted)), max(max(actual), max(predicted))
    if hi == lo:
        hi = lo + 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(v: float) -> float:
        return LEFT + plot_w * (v - lo) / (hi - lo)

    def sy(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

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
    parts += [
        f'<circle class="point" cx="{sx(a):.1f}" cy="{sy(p):.1f}" r="2.5"/>'
        for a, p in zip(actual, predicted, strict=True)
    ]
    parts.append("</svg>")
    return Markup("".join(parts))

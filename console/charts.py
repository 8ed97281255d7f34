"""Server-rendered SVG charts for the business page (no chart library, no JavaScript).

A chart is daily series (label → one value per day) drawn as lines or grouped bars, with a
title and description for screen readers; the page shows the same numbers in a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28
END, MIDDLE = 'text-anchor="end"', 'text-anchor="middle"'
COLOURS = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7b83", "#57606a")


def line_chart(
    title: str,
    days: Sequence[datetime],
    series: Mapping[str, Sequence[float]],
    *,
    bars: bool = False,
) -> Markup:
    """An SVG of `series` over `days` (lines, or grouped bars with `bars`)."""
    top = max([1.0, *(v for values in series.values() for v in values)])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(days), 1)

    def x(i: int) -> float:
        return LEFT + step * (i + 0.5)

    def y(v: float) -> float:
        return TOP + plot_h - (v / top) * plot_h

    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="t-{_id(title)}">',
        f'<title id="t-{_id(title)}">{escape(title)}</title>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        gy = y(top * fraction)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}"/>'
        )
        label = _n(top * fraction)
        out.append(f'<text class="axis" x="{LEFT - 6}" y="{gy + 4:.1f}" {END}>{label}</text>')
    for i, day in enumerate(days):
        if i % max(len(days) // 6, 1) == 0 or i == len(days) - 1:
            tick = f"{day:%m-%d}"
            out.append(f'<text class="axis" x="{x(i):.1f}" y="{HEIGHT - 8}" {MIDDLE}>{tick}</text>')
    width = step * 0.8 / max(len(series), 1)
    for n, values in enumerate(series.values()):
        colour = COLOURS[n % len(COLOURS)]
        if bars:
            for i, v in enumerate(values):
                bx = x(i) - step * 0.4 + n * width
                out.append(
                    f'<rect x="{bx:.1f}" y="{y(v):.1f}" width="{max(width - 1, 1):.1f}" '
                    f'height="{TOP + plot_h - y(v):.1f}" fill="{colour}"/>'
                )
        else:
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
            )
    out.append("</svg>")
    # Swatches are SVG, not inline styles, which the console's CSP forbids.
    legend = "".join(
        f'<li><svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">'
        f'<rect width="10" height="10" fill="{COLOURS[n % len(COLOURS)]}"/></svg>'
        f"{escape(label)}</li>"
        for n, label in enumerate(series)
    )
    return Markup("".join(out) + f'<ul class="legend">{legend}</ul>')  # noqa: S704 - escaped above


def _n(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _id(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower())

"""Charts drawn on the server as SVG: no script, no library, nothing fetched. Each has a title and a
description saying what it shows in words, for screen readers (the page has the numbers in tables
too)."""

from __future__ import annotations

import re
from html import escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 220, 44, 28, 12
SEVERITY_COLOURS = {"P1": "#a4001e", "P2": "#b54700", "P3": "#0b57d0", "P4": "#4d5761"}


def _frame(title: str, description: str, body: str) -> str:
    # The ids are the page's: with one pair shared by every chart, a screen reader read the first
    # chart's title and description for all of them.
    key = "chart-" + (re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "untitled")
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{key}-t {key}-d" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{key}-t">{escape(title)}</title>'
        f'<desc id="{key}-d">{escape(description)}</desc>{body}</svg>'
    )


def _axis(top: float, unit: str) -> str:
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    out = []
    for i in range(5):
        value = top * i / 4
        y = HEIGHT - PAD_BOTTOM - plot_h * i / 4
        out.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_tick(value, top)}{escape(unit)}'
            "</text>"
        )
    return "".join(out)


def _tick(value: float, top: float) -> str:
    """A tick's number: whole numbers, unless the axis is too short for them to differ."""
    if top >= 4:
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _labels(labels: list[str], slot: float) -> str:
    every = max(1, len(labels) // 10)  # at most about ten labels along the bottom
    return "".join(
        f'<text x="{PAD_LEFT + slot * (i + 0.5):.1f}" y="{HEIGHT - 8}" class="tick" text-anchor="middle">'
        f"{escape(label)}</text>"
        for i, label in enumerate(labels)
        if i % every == 0
    )


def stacked_bars(series: dict[str, list[int]], labels: list[str], title: str) -> str:
    """Counts per bucket, stacked by severity (the key)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = max([*totals, 1])
    top = top if top <= 4 else ((top + 3) // 4) * 4
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = (WIDTH - PAD_LEFT) / max(1, len(labels))
    bars = []
    for i in range(len(labels)):
        y = HEIGHT - PAD_BOTTOM
        for severity in sorted(series):
            n = series[severity][i]
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            bars.append(
                f'<rect x="{PAD_LEFT + slot * i + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                f'height="{h:.1f}" fill="{SEVERITY_COLOURS.get(severity, "#4d5761")}">'
                f"<title>{escape(labels[i])}: {n} {escape(severity)}</title></rect>"
            )
    busiest = max(range(len(labels)), key=lambda i: totals[i]) if labels else 0
    description = (
        f"{sum(totals)} in all over {len(labels)} bars; the most, {totals[busiest] if labels else 0}, on "
        f"{labels[busiest] if labels else '-'}."
    )
    return _frame(title, description, _axis(top, "") + "".join(bars) + _labels(labels, slot))


def line(values: list[float | None], labels: list[str], title: str, unit: str) -> str:
    """A value per bucket (gaps where there is none), e.g. median minutes to claim per week."""
    known = [v for v in values if v is not None]
    top = max([*known, 1.0])
    top = top if top <= 4 else float(((int(top) + 3) // 4) * 4)
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = (WIDTH - PAD_LEFT) / max(1, len(labels))
    points, dots, run = [], [], []
    for i, v in enumerate(values):
        if v is None:
            if run:
                points.append(run)
                run = []
            continue
        x, y = PAD_LEFT + slot * (i + 0.5), HEIGHT - PAD_BOTTOM - plot_h * v / top
        run.append(f"{x:.1f},{y:.1f}")
        dots.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" class="dot"><title>{escape(labels[i])}: {v:.1f}{escape(unit)}'
            "</title></circle>"
        )
    if run:
        points.append(run)
    paths = "".join(f'<polyline points="{" ".join(p)}" class="line"/>' for p in points)
    description = (
        f"From {known[0]:.1f}{unit} to {known[-1]:.1f}{unit} over {len(labels)} points."
        if known
        else "No values in this range."
    )
    return _frame(title, description, _axis(top, unit) + paths + "".join(dots) + _labels(labels, slot))

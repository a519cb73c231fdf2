"""The weekly chart: escalations per day as bars and median time-to-claim per day as a line,
this week against last. Headless (Agg); returns PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from handoff.report import WeeklyReport

WIDTH_PX, HEIGHT_PX, DPI = 1200, 600, 100
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def weekly_chart(r: WeeklyReport) -> bytes:
    fig, bars_ax = plt.subplots(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    try:
        x = list(range(7))
        w = 0.38
        bars_ax.bar([i - w / 2 for i in x], r.last.per_day_opened, w, label="escalations, last week", color="#c9d6e3")
        bars_ax.bar([i + w / 2 for i in x], r.this.per_day_opened, w, label="escalations, this week", color="#1d3557")
        bars_ax.set_xticks(x, DAYS)
        bars_ax.set_ylabel("escalations opened")
        bars_ax.yaxis.get_major_locator().set_params(integer=True)
        line_ax = bars_ax.twinx()
        for series, style, label in (
            (r.last.per_day_claim_median, dict(color="#e9a17c", linestyle="--"), "median time to claim, last week"),
            (r.this.per_day_claim_median, dict(color="#e63946"), "median time to claim, this week"),
        ):
            pts = [(i, v / 60) for i, v in enumerate(series) if v is not None]
            if pts:
                line_ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label, **style)
        line_ax.set_ylabel("minutes to claim")
        line_ax.set_ylim(bottom=0)
        handles = bars_ax.get_legend_handles_labels()
        more = line_ax.get_legend_handles_labels()
        bars_ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=9, frameon=False)
        bars_ax.set_title(f"Escalations, week {r.week} ({r.timezone})")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()
    finally:
        plt.close(fig)

"""Hours recovered, and how sure we are of it.

Hours recovered over a period = Σ (manual baseline - measured minutes from claim to first action) / 60
over the escalations with a first action. The baseline is what a handoff took without the bot. It
is assumed (MANUAL_BASELINE_MINUTES, an admin's number) until leads have measured at least
MEASURED_ENOUGH handoffs themselves (`/escalate baseline 25`): then it is their median, and the
uncertainty of that median gives a 90% interval (bootstrap: the measurements resampled with
replacement; the figure is linear in the baseline, so the interval carries straight over).

A pilot is judged by whether the last four weeks recovered more than PILOT_HOURS_PER_WEEK.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from storage.reports import WeekFigures

MEASURED_ENOUGH = 5
PILOT_HOURS_PER_WEEK = 1.0
PILOT_WEEKS = 4
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Baseline:
    minutes: float  # what a manual handoff takes, as used
    measured_from: int  # how many measurements it is the median of (0: assumed, the admin's number)
    low: float | None = None  # the 90% interval of that median (measured only)
    high: float | None = None

    @property
    def measured(self) -> bool:
        return self.measured_from > 0

    def describe(self) -> str:
        if self.measured:
            return (
                f"baseline {self.minutes:g} min, measured from {self.measured_from} handoffs "
                f"(90% interval {self.low:g}–{self.high:g} min)"
            )
        return f"baseline {self.minutes:g} min, assumed (MANUAL_BASELINE_MINUTES; measure it: /escalate baseline N)"


def baseline_from(measurements: list[float], assumed_minutes: int) -> Baseline:
    if len(measurements) < MEASURED_ENOUGH:
        return Baseline(minutes=float(assumed_minutes), measured_from=0)
    rng = random.Random(len(measurements) * 7919 + round(sum(measurements) * 1000))  # the same figures each time
    medians = sorted(
        statistics.median(rng.choices(measurements, k=len(measurements))) for _ in range(BOOTSTRAP_SAMPLES)
    )
    low, high = medians[int(0.05 * len(medians))], medians[int(0.95 * len(medians)) - 1]
    return Baseline(minutes=statistics.median(measurements), measured_from=len(measurements), low=low, high=high)


def hours(w: WeekFigures, minutes: float) -> float | None:
    """Hours recovered over the escalations of `w` with a first action, at a baseline of `minutes`."""
    if w.first_actions == 0:
        return None
    return (w.first_actions * minutes * 60 - w.action_seconds_total) / 3600


@dataclass(frozen=True)
class Recovered:
    per_week: float  # hours recovered a week, at the baseline
    low: float | None  # at the interval's ends (measured baselines only)
    high: float | None
    weeks: float

    def verdict(self) -> str:
        """Whether it beats the line a pilot is judged by, and by how much."""
        margin = self.per_week - PILOT_HOURS_PER_WEEK
        word = "more" if margin > 0 else "less"
        return (
            f"{self.per_week:.1f} h a week recovered over the last {self.weeks:g} weeks: {word} than the "
            f"{PILOT_HOURS_PER_WEEK:.1f} h a week a pilot is judged by, by {abs(margin):.1f} h"
        )

    @property
    def beats_the_line(self) -> bool:
        return self.per_week > PILOT_HOURS_PER_WEEK


def recovered(w: WeekFigures, baseline: Baseline, weeks: float) -> Recovered | None:
    middle = hours(w, baseline.minutes)
    if middle is None or weeks <= 0:
        return None
    low = hours(w, baseline.low) if baseline.low is not None else None
    high = hours(w, baseline.high) if baseline.high is not None else None
    return Recovered(
        per_week=middle / weeks,
        low=low / weeks if low is not None else None,
        high=high / weeks if high is not None else None,
        weeks=weeks,
    )

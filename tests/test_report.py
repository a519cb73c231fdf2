"""The leads' weekly report: exact figures from a synthetic week, on both databases."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.charts import weekly_chart
from bot.slack.report_blocks import report_blocks
from handoff.domain import Draft, Handoff, Moved, Queue, Severity, Won
from handoff.report import as_text, build_report
from handoff.schedule import last_due, parse_iso_week, week_bounds
from handoff.service import HandoffService
from storage.db import Database

WEEK = date(2026, 11, 16)  # a Monday; ISO week 2026-W47
S1, S2, S3 = "USENIOR1", "USENIOR2", "USENIOR3"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def at(self, moment: datetime) -> Clock:
        self.now = moment
        return self


def utc(day: int, hour: int, minute: float = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC) + timedelta(minutes=minute)


async def escalate(s: HandoffService, clock: Clock, ws: int, when: datetime, sev: str, customer: str = "") -> int:
    clock.at(when)
    draft = Draft(summary=f"Problem at {when:%a %H:%M}", severity=Severity(sev), tried="things", customer=customer)
    r = await s.escalate(ws, "UJUNIOR", draft, key=f"k-{when.isoformat()}")
    await s.card_posted(ws, r.handoff.id, channel="C1", ref=f"{when.timestamp():.6f}", url=None)
    return r.handoff.id


async def reply(s: HandoffService, clock: Clock, ws: int, hid: int, user: str, when: datetime) -> None:
    clock.at(when)
    h = await s.get(ws, hid)
    assert h is not None and h.card_ref
    await s.first_reply(ws, channel="C1", thread_ref=h.card_ref, user=user, event_id=None, source="slack")


async def seed_week(db: Database) -> tuple[HandoffService, int]:
    """The synthetic week the expected figures below were worked out by hand from."""
    clock = Clock()
    s = HandoffService(db, clock=clock)
    clock.at(utc(1, 0))
    ws = await s.workspace_id("slack", "T0REPORT")
    # A: Mon 09:00 P1 Acme. Claimed +4 (S2 loses at +4m10s), S1 replies +10, resolves +60.
    a = await escalate(s, clock, ws, utc(16, 9), "P1", "Acme")
    clock.at(utc(16, 9, 4))
    await s.claim(ws, a, S1)
    clock.at(utc(16, 9, 4 + 1 / 6))
    await s.claim(ws, a, S2)
    await reply(s, clock, ws, a, S1, utc(16, 9, 10))
    clock.at(utc(16, 10))
    await s.resolve(ws, a, S1, "fixed")
    # B: Tue 10:00 P2 Acme. S2 claims +10 and resolves +30 with no reply (the resolve is the first action).
    b = await escalate(s, clock, ws, utc(17, 10), "P2", "Acme")
    clock.at(utc(17, 10, 10))
    await s.claim(ws, b, S2)
    clock.at(utc(17, 10, 30))
    await s.resolve(ws, b, S2, "done")
    # C: Wed 11:00 P3 Globex. S1 claims +2, releases +3; S2 claims +20 and replies +25.
    c = await escalate(s, clock, ws, utc(18, 11), "P3", "Globex")
    clock.at(utc(18, 11, 2))
    await s.claim(ws, c, S1)
    clock.at(utc(18, 11, 3))
    await s.release(ws, c, S1)
    clock.at(utc(18, 11, 20))
    await s.claim(ws, c, S2)
    await reply(s, clock, ws, c, S1, utc(18, 11, 22))  # not the claimer: does not count
    await reply(s, clock, ws, c, S2, utc(18, 11, 25))
    # D: Thu 12:00 P3. S1 claims +30; S2 and S3 lose.
    d = await escalate(s, clock, ws, utc(19, 12), "P3")
    for who, m in ((S1, 30), (S2, 30.1), (S3, 30.2)):
        clock.at(utc(19, 12, m))
        await s.claim(ws, d, who)
    # E: Sun 23:00 P4, never claimed.
    await escalate(s, clock, ws, utc(22, 23), "P4")
    # F: the week before (Sat 14 Nov), claimed after 8 min.
    f = await escalate(s, clock, ws, utc(14, 8), "P2")
    clock.at(utc(14, 8, 8))
    await s.claim(ws, f, S3)
    # G: next Monday 00:00, outside the week.
    await escalate(s, clock, ws, utc(23, 0), "P1")
    return s, ws


async def test_every_figure_of_a_synthetic_week_is_exact(db: Database) -> None:
    _s, ws = await seed_week(db)
    r = await build_report(db, ws, WEEK, timezone="UTC", baseline_minutes=30)
    t = r.this
    assert (t.opened, t.claimed, t.resolved, t.still_open, t.contested) == (5, 4, 2, 3, 2)
    assert t.to_claim_median == pytest.approx(7 * 60, abs=0.01)  # [2, 4, 10, 30] min
    assert t.to_claim_p90 == pytest.approx(24 * 60, abs=0.01)  # 10 + 0.7 x 20
    assert t.to_action_median == pytest.approx(6 * 60, abs=0.01)  # [5, 6, 20] min
    assert t.to_resolve_median == pytest.approx(45 * 60, abs=0.01)  # [30, 60] min
    assert t.by_severity == {"P1": 1, "P2": 1, "P3": 2, "P4": 1}
    assert t.top_customers == [("Acme", 2), ("Globex", 1)]
    assert t.claims_by == {S1: 3, S2: 2}
    assert t.resolves_by == {S1: 1, S2: 1}
    assert t.first_actions == 3
    # (30 - 6) + (30 - 20) + (30 - 5) = 59 minutes
    assert r.hours_recovered == pytest.approx(59 / 60, abs=1e-4)
    assert t.per_day_opened == [1, 1, 1, 1, 0, 0, 1]
    assert t.per_day_claim_median[:4] == pytest.approx([240, 600, 120, 1800], abs=0.01)
    assert t.per_day_claim_median[4:] == [None, None, None]
    # The week before, for the changes.
    assert (r.last.opened, r.last.claimed) == (1, 1)
    assert r.last.to_claim_median == pytest.approx(8 * 60, abs=0.01)
    text = as_text(r)
    assert "Opened 5 (was 1, +4)" in text
    assert "median 7.0 min (was 8.0 min, −1.0 min), p90 24.0 min" in text
    assert "Estimated hours recovered: 1.0 h over 3 handoffs\n" in text
    assert "\n  An estimate, not a measurement: a baseline of 30 min" in text


async def test_a_cancelled_escalation_is_not_counted_as_still_open(db: Database) -> None:
    s, ws = await seed_week(db)
    clock = s.clock
    assert isinstance(clock, Clock)
    # H: Fri 09:00, withdrawn by the requester at 09:05. I: Fri 10:00, withdrawn only after the week.
    h = await escalate(s, clock, ws, utc(20, 9), "P3")
    clock.at(utc(20, 9, 5))
    await s.cancel(ws, h, "UJUNIOR")
    i = await escalate(s, clock, ws, utc(20, 10), "P3")
    clock.at(utc(23, 9))
    await s.cancel(ws, i, "UJUNIOR")
    r = await build_report(db, ws, WEEK, timezone="UTC", baseline_minutes=30)
    t = r.this
    # Seven opened: A and B resolved, H cancelled; C, D, E and I (cancelled after the week) still open.
    assert (t.opened, t.resolved, t.cancelled, t.still_open) == (7, 2, 1, 4)
    assert "still open 4 · cancelled 1" in as_text(r)
    fields = json.dumps([b.to_dict() for b in report_blocks(r)])
    assert "4 (1 cancelled)" in fields


async def test_daylight_saving_weeks_use_local_midnights(db: Database) -> None:
    clock = Clock()
    s = HandoffService(db, clock=clock)
    clock.at(utc(1, 0, month=10))
    ws = await s.workspace_id("slack", "T0DST")
    # Europe/Berlin leaves summer time on Sun 25 Oct 2026: the week of 19 Oct lasts 169 hours.
    berlin = ZoneInfo("Europe/Berlin")
    start, end = week_bounds(date(2026, 10, 19), berlin)
    assert (start, end) == (datetime(2026, 10, 18, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC))
    inside = [datetime(2026, 10, 18, 22, 30, tzinfo=UTC), datetime(2026, 10, 25, 22, 30, tzinfo=UTC)]
    outside = [datetime(2026, 10, 18, 21, 30, tzinfo=UTC), datetime(2026, 10, 25, 23, 30, tzinfo=UTC)]
    for moment in inside + outside:
        await escalate(s, clock, ws, moment, "P3")
    r = await build_report(db, ws, date(2026, 10, 19), timezone="Europe/Berlin", baseline_minutes=30)
    assert r.this.opened == 2
    assert r.this.per_day_opened == [1, 0, 0, 0, 0, 0, 1]  # Monday 00:30 CEST, Sunday 23:30 CET
    # America/New_York leaves summer time on Sun 1 Nov 2026.
    ny = ZoneInfo("America/New_York")
    start, end = week_bounds(date(2026, 10, 26), ny)
    assert (start, end) == (datetime(2026, 10, 26, 4, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC))
    await escalate(s, clock, ws, datetime(2026, 11, 2, 4, 30, tzinfo=UTC), "P2")  # Sun 23:30 EST: inside
    await escalate(s, clock, ws, datetime(2026, 10, 26, 3, 30, tzinfo=UTC), "P2")  # Sun 23:30 EDT: before
    r = await build_report(db, ws, date(2026, 10, 26), timezone="America/New_York", baseline_minutes=30)
    assert r.this.opened == 1 and r.this.per_day_opened[6] == 1


async def test_an_empty_week_says_so_plainly(db: Database) -> None:
    s = HandoffService(db)
    ws = await s.workspace_id("slack", "T0EMPTY")
    r = await build_report(db, ws, WEEK, timezone="UTC", baseline_minutes=30)
    assert r.empty and r.this.to_claim_median is None and r.hours_recovered is None
    assert as_text(r).endswith("No escalations were opened this week.")
    blocks = json.dumps([b.to_dict() for b in report_blocks(r)])
    assert "No escalations were opened this week." in blocks
    assert "min" not in blocks and "median" not in blocks


async def test_a_week_where_nothing_was_claimed(db: Database) -> None:
    clock = Clock()
    s = HandoffService(db, clock=clock)
    ws = await s.workspace_id("slack", "T0IDLE")
    await escalate(s, clock, ws, utc(16, 9), "P3")
    await escalate(s, clock, ws, utc(18, 9), "P2")
    r = await build_report(db, ws, WEEK, timezone="UTC", baseline_minutes=30)
    assert (r.this.opened, r.this.claimed, r.this.still_open) == (2, 0, 2)
    assert r.this.to_claim_median is None and r.this.to_action_median is None and r.hours_recovered is None
    assert "Nothing opened this week was claimed." in as_text(r)
    assert "Estimated hours" not in as_text(r)


def test_report_schedule_arithmetic() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # Monday 23 Nov 2026 11:00 Berlin, due Mondays 09:00: the slot was today, for last week.
    slot, week = last_due(datetime(2026, 11, 23, 10, tzinfo=UTC), "monday", time(9), berlin)
    assert slot == datetime(2026, 11, 23, 8, tzinfo=UTC) and week == date(2026, 11, 16)
    # 08:00 the same Monday: the last slot was a week ago, for the week before.
    slot, week = last_due(datetime(2026, 11, 23, 7, tzinfo=UTC), "monday", time(9), berlin)
    assert week == date(2026, 11, 9)
    # Friday 17:00: the last full week before it.
    _slot, week = last_due(datetime(2026, 11, 27, 18, tzinfo=UTC), "friday", time(17), berlin)
    assert week == date(2026, 11, 16)
    assert parse_iso_week("2026-W47") == WEEK
    with pytest.raises(ValueError):
        parse_iso_week("last week")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


async def test_the_chart_is_a_png_of_the_expected_size(db: Database) -> None:
    _s, ws = await seed_week(db)
    r = await build_report(db, ws, WEEK, timezone="UTC", baseline_minutes=30)
    data = await asyncio.to_thread(weekly_chart, r)
    assert png_size(data) == (1200, 600)
    assert len(data) > 10_000  # bars, lines and labels, not a blank canvas


async def report_cli(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "TIMEZONE"))}
    env["DATABASE_URL"] = db_url
    command = [sys.executable, "-m", "bot.cli", "report", "--week", "2026-W47", "--workspace", "T0REPORT", *args]
    return await asyncio.to_thread(
        subprocess.run, command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


async def test_report_cli_prints_json_and_writes_the_chart(db: Database, db_url: str, tmp_path: Path) -> None:
    await seed_week(db)
    chart = tmp_path / "week.png"
    result = await report_cli(db_url, tmp_path, "--format", "json", "--chart", str(chart))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out[0]["workspace"] == "T0REPORT" and out[0]["week"] == "2026-W47"
    assert out[0]["this"]["opened"] == 5 and out[0]["this"]["claims_by"] == {S1: 3, S2: 2}
    assert png_size(chart.read_bytes()) == (1200, 600)


async def test_the_text_report_keeps_each_customer_on_its_line(db: Database, db_url: str, tmp_path: Path) -> None:
    """A customer name is typed by a person: in the text report it can't forge a line or repaint a terminal."""
    clock = Clock()
    s = HandoffService(db, clock=clock)
    clock.at(utc(1, 0))
    ws = await s.workspace_id("slack", "T0REPORT")
    forged = "Acme\nOpened 999 · claimed 999\r\x1b[2J\x1b[31mRED\u2028Claims: UBOSS 99\x85tail"
    await escalate(s, clock, ws, utc(16, 9), "P2", forged)
    result = await report_cli(db_url, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not any(line.startswith(("Opened 999", "Claims: UBOSS")) for line in lines), result.stdout
    assert "\x1b" not in result.stdout and "\r" not in result.stdout and "\u2028" not in result.stdout
    customers = [line for line in lines if line.startswith("Busiest customers:")]
    assert customers == ["Busiest customers: Acme Opened 999 · claimed 999 [2J [31mRED Claims: UBOSS 99 tail (1)"]


async def test_each_queue_has_its_figures_and_time_to_claim_counts_from_arrival(
    db: Database, db_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    s = HandoffService(db, clock=clock)
    ws = await s.workspace_id("slack", "T0QUEUEREPORT")
    billing = await s.add_queue(ws, Queue(id=0, workspace_id=ws, name="Billing", is_default=False))
    network = await s.add_queue(ws, Queue(id=0, workspace_id=ws, name="Networking", is_default=False))
    assert billing is not None and network is not None

    async def opened(when: datetime, queue: Queue) -> Handoff:
        clock.at(when)
        draft = Draft(summary=f"Problem at {when:%a %H:%M}", severity=Severity.P3, tried="things")
        return (await s.escalate(ws, "UJUNIOR", draft, key=f"q-{when.isoformat()}", queue_id=queue.id)).handoff

    # A: Billing, claimed there after 10 minutes.
    a = await opened(utc(17, 9), billing)
    clock.at(utc(17, 9, 10))
    assert isinstance(await s.claim(ws, a.id, S1, queue_id=billing.id), Won)
    # B: Billing, moved to Networking after 20 minutes, claimed there 5 minutes later.
    b = await opened(utc(17, 10), billing)
    clock.at(utc(17, 10, 20))
    moved = await s.move(ws, b.id, S1, to_queue_id=network.id, expected_version=b.version, note="", may_move=True)
    assert isinstance(moved, Moved)
    clock.at(utc(17, 10, 25))
    assert isinstance(await s.claim(ws, b.id, S2, queue_id=network.id), Won)

    whole = await build_report(db, ws, WEEK, timezone="UTC", baseline_minutes=30)
    assert (whole.this.opened, whole.this.claimed) == (2, 2)
    assert whole.this.to_claim_median == pytest.approx(7.5 * 60, abs=0.01)  # [5 (from arrival), 10] min
    assert whole.this.moves == [("Billing", "Networking", 1)]
    in_billing = await build_report(db, ws, WEEK, timezone="UTC", baseline_minutes=30, queue=(billing.id, "Billing"))
    assert (in_billing.this.opened, in_billing.this.to_claim_median) == (1, pytest.approx(600, abs=0.01))
    assert in_billing.this.claims_by == {S1: 1} and in_billing.this.moves == [("Billing", "Networking", 1)]
    in_network = await build_report(db, ws, WEEK, timezone="UTC", baseline_minutes=30, queue=(network.id, "Networking"))
    assert (in_network.this.opened, in_network.this.to_claim_median) == (1, pytest.approx(300, abs=0.01))
    assert in_network.this.claims_by == {S2: 1}
    text = as_text(in_network)
    assert "queue Networking" in text and "Moved between queues: 1 · Billing → Networking 1" in text
    by_cli = await report_cli(db_url, tmp_path, "--workspace", "T0QUEUEREPORT", "--queue", "networking")
    assert by_cli.returncode == 0 and "queue Networking" in by_cli.stdout and "Opened 1" in by_cli.stdout
    unknown = await report_cli(db_url, tmp_path, "--workspace", "T0QUEUEREPORT", "--queue", "tier 9")
    assert unknown.returncode == 1 and "no queue named tier 9" in unknown.stdout

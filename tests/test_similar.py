"""Similar past resolutions: the right ones first, only resolved ones, only this workspace's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from handoff.domain import Draft, Escalated, Handoff, Severity, Won
from handoff.service import HandoffService
from storage import search
from storage.db import Database

CORPUS = [
    ("sso", "SSO login fails with SAML InvalidNameIDPolicy", "Set the NameID format to emailAddress in the IdP."),
    ("sso-change", "Customer can't log in after SSO change, SAML error", "Re-uploaded the IdP metadata certificate."),
    ("invoice", "Invoice PDF export times out for large accounts", "Raised the export worker timeout to 120 s."),
    ("webhook", "Webhook deliveries failing with 401 after key rotation", "Customer still had the old signing secret."),
    ("reset", "Password reset email never arrives", "Their domain was on the SES suppression list; removed it."),
    ("cert", "SAML certificate expired, every SSO login rejected", "Rotated the certificate and told the customer."),
]

PROBES = {
    "SSO login fails: SAML InvalidNameIDPolicy error for one user": ["sso"],
    "Webhooks return 401 since the customer rotated keys": ["webhook"],
    "Exporting an invoice to PDF times out": ["invoice"],
    "Dark mode colours are wrong in the mobile app": [],
}


async def _resolved(service: HandoffService, ws: int, key: str, summary: str, note: str) -> Handoff:
    made = await service.escalate(ws, "UJUNIOR", Draft(summary=summary, severity=Severity.P3, tried=""), key=key)
    won = await service.claim(ws, made.handoff.id, "USENIOR")
    assert isinstance(won, Won)
    await service.resolve(ws, made.handoff.id, "USENIOR", note)
    return made.handoff


async def test_similar_resolutions_rank_the_right_ones_first_within_the_workspace(db: Database) -> None:
    service = HandoffService(db)
    ws = await service.workspace_id("slack", "T0A")
    other = await service.workspace_id("slack", "T0B")
    numbers = {key: (await _resolved(service, ws, key, summary, note)).number for key, summary, note in CORPUS}
    # Another workspace's near-identical resolution, and this workspace's still-open twin, must never show.
    await _resolved(service, other, "b-sso", "SSO login fails with SAML InvalidNameIDPolicy", "B's own fix")
    await service.escalate(
        ws,
        "UJUNIOR",
        Draft(summary="SSO login fails, SAML InvalidNameIDPolicy", severity=Severity.P2, tried=""),
        key="open-twin",
    )

    ranking: dict[str, list[str]] = {}
    by_number = {n: k for k, n in numbers.items()}
    for i, (probe, expected_first) in enumerate(PROBES.items()):
        made = await service.escalate(
            ws, "UJUNIOR", Draft(summary=probe, severity=Severity.P3, tried=""), key=f"probe-{i}"
        )
        found = await service.similar_resolved(ws, made.handoff)
        assert len(found) <= 3
        assert all(f["number"] in by_number for f in found), found  # only this workspace's resolved ones
        ranking[probe] = [by_number[f["number"]] for f in found]
        assert ranking[probe][: len(expected_first)] == expected_first, ranking
        for f in found:
            assert f["resolved_by"] == "USENIOR" and f["resolution"]
    assert set(ranking["SSO login fails: SAML InvalidNameIDPolicy error for one user"]) <= {"sso", "sso-change", "cert"}
    assert ranking["Dark mode colours are wrong in the mobile app"] == []
    print("similarity ranking:", ranking)

    # The other workspace sees only its own.
    made = await service.escalate(
        other, "UJUNIOR", Draft(summary="SAML InvalidNameIDPolicy on login", severity=Severity.P3, tried=""), key="x"
    )
    theirs = await service.similar_resolved(other, made.handoff)
    assert [f["resolution"] for f in theirs] == ["B's own fix"]


async def _one_resolved_and_a_new_one(db: Database) -> tuple[HandoffService, int, Escalated]:
    """An EU checkout 502 resolved once, and a new escalation about the same thing."""
    service = HandoffService(db)
    ws = await service.workspace_id("slack", "T0A")
    await _resolved(service, ws, "k1", "Checkout page returns 502 for EU customers", "Restarted the EU gateway.")
    made = await service.escalate(
        ws, "UJUNIOR", Draft(summary="EU checkout 502 errors", severity=Severity.P2, tried=""), key="new"
    )
    return service, ws, made


async def test_the_card_keeps_the_similar_resolutions_found_first(db: Database) -> None:
    service, ws, made = await _one_resolved_and_a_new_one(db)
    first = await service.with_similar(made.handoff)
    assert [f["resolution"] for f in first.similar or []] == ["Restarted the EU gateway."]
    await service.card_posted(ws, made.handoff.id, channel="C1", ref="1.1", url=None, similar=first.similar)
    # Resolved later, a better match does not rewrite what the card already showed.
    await _resolved(service, ws, "k2", "EU checkout 502 errors again", "Rolled back the gateway config.")
    again = await service.with_similar(await service.get(ws, made.handoff.id))  # type: ignore[arg-type]
    assert again.similar == first.similar


async def test_a_slow_lookup_never_holds_the_card_back(db: Database) -> None:
    service, ws, made = await _one_resolved_and_a_new_one(db)
    out_of_time = await service.with_similar(made.handoff, budget=0)
    assert out_of_time.similar is None  # the card goes out without them...
    stored = await service.get(ws, made.handoff.id)
    assert stored is not None and stored.similar is None  # ...and nothing false ("none similar") is kept


async def test_everyday_words_do_not_crowd_out_the_best_match(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # "large accounts" is in more resolved escalations than COMMON: pairs of such words would make the
    # index rank them all (slow on a big history), so they pair with nothing. The one resolution that
    # shares them *and* the rarer words must still come first, though the index now ranks it among
    # forty that share only the rarer words (and, being long, ranks it last).
    monkeypatch.setattr(search, "COMMON", 50)
    monkeypatch.setattr(search, "WITHOUT_COMMON_LIMIT", 60)
    service = HandoffService(db)
    ws = await service.workspace_id("slack", "T0A")
    for i in range(40):
        await _resolved(service, ws, f"near-{i}", f"SSO loops on login, tenant {i}", "Cleared the session")
    for i in range(60):
        await _resolved(service, ws, f"noise-{i}", f"Dashboard slow for large accounts ({i})", "Cached it")
    long_story = " ".join(["The customer walked us through every step of their setup again."] * 6)
    best = await _resolved(
        service, ws, "best", f"SSO loops on login on large accounts. {long_story}", "Raised the SAML clock skew"
    )
    again = Draft(summary="SSO loops on login again, on large accounts", severity=Severity.P2, tried="")
    probe = await service.escalate(ws, "UJUNIOR", again, key="p")
    found = await service.similar_resolved(ws, probe.handoff)
    assert found and found[0]["number"] == best.number, found


async def test_cards_drawn_together_find_the_same_resolutions_counting_their_words_once(db: Database) -> None:
    # PostgreSQL: the words of escalations whose cards are drawn at the same moment are counted in one
    # statement (one round trip for all, not one each), and each still gets what it would alone,
    # only from its own workspace.
    if not db.is_postgres:
        pytest.skip("on SQLite the count is a quick read on the event loop, one per card")
    service = HandoffService(db)
    ws = await service.workspace_id("slack", "T0A")
    other = await service.workspace_id("slack", "T0B")
    for key, summary, note in CORPUS:
        await _resolved(service, ws, key, summary, note)
    await _resolved(service, other, "b-invoice", "Invoice PDF export times out for large accounts", "B's fix")
    probes = [
        (
            await service.escalate(w, "UJUNIOR", Draft(summary=p, severity=Severity.P3, tried=""), key=f"probe-{w}-{i}")
        ).handoff
        for i, p in enumerate(PROBES)
        for w in (ws, other)
    ]
    alone = [await service.similar_resolved(h.workspace_id, h) for h in probes]
    counted: list[str] = []

    def count(*args: Any) -> None:
        if args[2].startswith("SELECT (SELECT count(*)"):
            counted.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    together = await asyncio.gather(*(service.similar_resolved(h.workspace_id, h) for h in probes))
    assert together == alone
    assert len(counted) == 1
    pairs = zip(probes, together, strict=True)
    by_ws = {(h.workspace_id, h.summary): [f["summary"] for f in found] for h, found in pairs}
    invoice = "Invoice PDF export times out for large accounts"
    assert by_ws[(other, "Exporting an invoice to PDF times out")] == [invoice]  # B's own, not A's
    assert by_ws[(ws, "Webhooks return 401 since the customer rotated keys")][0].startswith("Webhook deliveries")

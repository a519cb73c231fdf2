"""The card and message builders: pure functions of a handoff, tested without a network."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.phrases import after_phrase, ago_phrase
from bot.slack import text as t
from bot.slack.cards import card_blocks, card_payload
from bot.slack.ids import BadMetadata, CardAction
from bot.slack.modals import escalate_modal, prefill_from_text
from handoff.domain import Handoff, Severity, Status
from handoff.validation import FormErrors, validate_draft, validate_note

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def handoff(**kw: object) -> Handoff:
    base = Handoff(
        id=7,
        workspace_id=1,
        number=42,
        status=Status.OPEN,
        severity=Severity.P1,
        summary="Payments down",
        details="500s from /charge",
        tried="Restarted the worker",
        customer="Acme",
        requester_id="UREQ",
        requested_senior_id=None,
        origin_channel=None,
        claimed_by=None,
        claimed_at=None,
        first_action_at=None,
        resolved_by=None,
        resolution=None,
        resolved_at=None,
        version=1,
        card_channel=None,
        card_ref=None,
        card_url=None,
        created_at=T0,
        updated_at=T0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def all_text(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_escape_turns_markup_into_entities() -> None:
    assert t.escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


@pytest.mark.parametrize("limit", [10, 11, 12, 13, 50])
def test_fit_never_splits_an_entity_and_marks_the_cut(limit: int) -> None:
    out = t.fit("a<b>c&d" * 10, limit)
    assert len(out) <= limit and out.endswith("…")
    body = out[:-1]
    assert body.count("&") == body.count(";"), out  # every entity complete


def test_fit_leaves_short_text_alone() -> None:
    assert t.fit("fine", 10) == "fine"


def test_open_card_has_header_sections_and_a_primary_claim() -> None:
    blocks = [b.to_dict() for b in card_blocks(handoff())]
    assert blocks[0]["type"] == "header" and "ESC-42" in blocks[0]["text"]["text"] and "P1" in blocks[0]["text"]["text"]
    text = all_text(blocks)
    for part in (
        "Payments down",
        "Problem",
        "500s from /charge",
        "What was tried",
        "Customer / environment",
        "<@UREQ>",
    ):
        assert part in text
    actions = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [(a["action_id"], a.get("style")) for a in actions] == [("claim", "primary")]
    assert CardAction.parse(actions[0]["value"]) == CardAction(h=7, v=1)


def test_claimed_card_says_who_and_how_long_after() -> None:
    h = handoff(status=Status.CLAIMED, claimed_by="UANA", claimed_at=T0 + timedelta(minutes=2, seconds=30), version=2)
    blocks = [b.to_dict() for b in card_blocks(h)]
    assert "Claimed by <@UANA> · 2 min after escalation" in all_text(blocks)
    actions = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [a["action_id"] for a in actions] == ["resolve", "release"]


def test_resolved_card_shows_the_resolution_and_no_buttons() -> None:
    h = handoff(
        status=Status.RESOLVED,
        claimed_by="UANA",
        claimed_at=T0,
        resolved_by="UANA",
        resolved_at=T0 + timedelta(hours=2, minutes=5),
        resolution="Rotated the key <@U9>",
    )
    blocks = [b.to_dict() for b in card_blocks(h)]
    text = all_text(blocks)
    assert "Resolved by <@UANA> · 2 h 5 min after escalation" in text
    assert "Rotated the key &lt;@U9&gt;" in text
    assert not [b for b in blocks if b["type"] == "actions"]


def test_card_with_maximal_hostile_text_is_valid_block_kit() -> None:
    h = handoff(summary="<" * 150, details="&" * 3000, tried=">" * 3000, customer="<@U1>" * 60)
    payload = card_payload(h)  # slack_sdk validates lengths while building
    for b in payload["blocks"]:  # type: ignore[attr-defined]
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= 3000
    assert "<@U1>" not in json.dumps(payload)


def test_escalate_modal_prefill() -> None:
    assert prefill_from_text("short one") == ("short one", "")
    summary, details = prefill_from_text("line one\nline two")
    assert summary == "line one" and details == "line one\nline two"
    view = escalate_modal(summary="x" * 500).to_dict()
    assert len(view["blocks"][0]["element"]["initial_value"]) == 150


def test_card_action_metadata_refuses_forgeries() -> None:
    for raw in ["", "{}", '{"h": -1}', '{"h": 1, "ws": 2}', "[1]", '{"h": "1; DROP"}']:
        with pytest.raises(BadMetadata):
            CardAction.parse(raw)


def test_validation_messages_name_the_field() -> None:
    with pytest.raises(FormErrors) as err:
        validate_draft({"summary": "", "tried": "", "severity": "P9"}, requester_id="U1")
    assert set(err.value.errors) == {"summary", "tried", "severity"}
    draft = validate_draft(
        {"summary": "  a\tb  \x00", "tried": "x", "severity": None, "requested_senior": ""}, requester_id="U1"
    )
    assert draft.summary == "a b" and draft.severity == Severity.P3 and draft.requested_senior_id is None
    with pytest.raises(FormErrors):
        validate_note("   ")
    assert validate_note(" ok \r\n") == "ok"


@pytest.mark.parametrize(
    ("minutes", "after", "ago"),
    [
        (0, "under a minute", "less than a minute ago"),
        (1, "1 min", "1 minute ago"),
        (2, "2 min", "2 minutes ago"),
        (185, "3 h 5 min", "3 hours ago"),
    ],
)
def test_time_phrases(minutes: int, after: str, ago: str) -> None:
    later = T0 + timedelta(minutes=minutes, seconds=10)
    assert after_phrase(T0, later) == after
    assert ago_phrase(T0, later) == ago

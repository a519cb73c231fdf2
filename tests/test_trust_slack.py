"""`/slack/events` against what the internet can send: verify first, then parse, then answer
the person, and never a 5xx, a traceback or a call to an address from an unverified request."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.sandbox.simulator import button_value
from tests.conftest import ESC_CHANNEL, JUNIOR, SECRET, SENIORS, TEAM, Bot
from tests.edge import Outside, form, raw_post, stored, tracebacks, warnings_from
from tests.helpers import FORM, card_text, escalate, events_handled, eventually, open_form, settle

ANA = SENIORS[0]


def command_pairs(outside: Outside, **extra: str) -> dict[str, str]:
    return {
        "command": "/escalate",
        "text": "help",
        "team_id": TEAM,
        "user_id": JUNIOR,
        "channel_id": "CGENERAL",
        "trigger_id": "trig.U0JUNIOR.x",
        "response_url": f"{outside.url}/hook",
        **extra,
    }


# ---- 1. unsigned requests with malformed signature headers ---------------------------------------

MALFORMED_HEADERS = [
    pytest.param([(b"X-Slack-Request-Timestamp", b"abc"), (b"X-Slack-Signature", b"v0=00")], id="ts-letters"),
    pytest.param([(b"X-Slack-Request-Timestamp", b""), (b"X-Slack-Signature", b"v0=00")], id="ts-empty"),
    pytest.param([(b"X-Slack-Request-Timestamp", b"123.5"), (b"X-Slack-Signature", b"v0=00")], id="ts-float"),
    pytest.param([(b"X-Slack-Request-Timestamp", b" +1 "), (b"X-Slack-Signature", b"v0=00")], id="ts-signed"),
    pytest.param(
        [(b"X-Slack-Request-Timestamp", str(int(time.time())).encode()), (b"X-Slack-Signature", "v0=ü".encode())],
        id="sig-non-ascii",
    ),
    pytest.param(
        [(b"X-Slack-Request-Timestamp", str(int(time.time())).encode()), (b"X-Slack-Signature", b"\xff\xfe")],
        id="sig-bytes",
    ),
    pytest.param([], id="no-headers"),
]


@pytest.mark.parametrize("headers", MALFORMED_HEADERS)
async def test_malformed_signature_headers_are_401_and_nothing_is_called(
    bot: Bot, outside: Outside, headers: list[tuple[bytes, bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    before = await stored(bot.runtime.db)
    body = form(command_pairs(outside))
    answer = await raw_post(
        bot.url + "/slack/events", body, [(b"Content-Type", b"application/x-www-form-urlencoded"), *headers]
    )
    assert answer.status == 401
    await settle(bot)
    assert outside.hits == []  # the response_url in the unverified body was never called
    assert bot.fake.calls == [] and bot.fake.replies == []
    assert await stored(bot.runtime.db) == before
    assert tracebacks(caplog.records) == []


# ---- 2. unsigned malformed bodies: 401 before any parsing ----------------------------------------

UNPARSEABLE = [
    pytest.param(b"payload=%7B%22type%22%3A", "application/x-www-form-urlencoded", id="truncated-payload"),
    pytest.param(b"payload=null", "application/x-www-form-urlencoded", id="payload-null"),
    pytest.param(b"{not json", "application/json", id="invalid-json"),
    pytest.param(b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded", id="not-utf8"),
    pytest.param(b"command=/escalate&team_id=T1", "application/json", id="form-labelled-json"),
    pytest.param(b"[1, 2, 3]", "application/json", id="json-array"),
    pytest.param(b'"just a string"', "application/json", id="json-string"),
]


@pytest.mark.parametrize(("body", "content_type"), UNPARSEABLE)
async def test_unsigned_garbage_is_401_without_a_traceback(
    bot: Bot, body: bytes, content_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    answer = await raw_post(bot.url + "/slack/events", body, [(b"Content-Type", content_type.encode())])
    assert answer.status == 401
    assert tracebacks(caplog.records) == []
    assert bot.fake.calls == []


@pytest.mark.parametrize(("body", "content_type"), UNPARSEABLE)
async def test_signed_garbage_is_400_with_one_warning(
    bot: Bot, body: bytes, content_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Only someone with the signing secret can send these; still no 5xx and no traceback."""
    ts = str(int(time.time()))
    try:
        signed = bot.slack.sign(body.decode("utf-8"), int(ts))
    except UnicodeDecodeError:
        signed = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + "0" * 64}
    headers = [(b"Content-Type", content_type.encode()), *((k.encode(), v.encode()) for k, v in signed.items())]
    with caplog.at_level(logging.WARNING):
        answer = await raw_post(bot.url + "/slack/events", body, headers)
    assert answer.status in (400, 401)
    if body.startswith(b"\xff"):
        assert answer.status == 401  # Slack signs UTF-8 only: these bytes cannot be its
    else:
        assert answer.status == 400
        assert len(warnings_from(caplog.records, "bot.slack.boundary")) == 1
    assert tracebacks(caplog.records) == []
    assert bot.fake.calls == []


# ---- 3. signed, but not what Slack sends ---------------------------------------------------------


def payload_of(body: str) -> dict[str, Any]:
    from urllib.parse import parse_qs

    return json.loads(parse_qs(body)["payload"][0])


async def post_payload(bot: Bot, payload: dict[str, Any]) -> Any:
    return await bot.slack.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")


async def test_a_form_whose_fields_have_the_wrong_shape_gets_field_errors(bot: Bot) -> None:
    view = await open_form(bot)
    good = payload_of(bot.slack.view_submission_body(JUNIOR, view, FORM))

    not_a_dict = json.loads(json.dumps(good))
    not_a_dict["view"]["state"]["values"] = ["summary", "tried"]
    answer = await post_payload(bot, not_a_dict)
    assert answer.status == 200
    assert answer.json()["response_action"] == "errors"
    assert set(answer.json()["errors"]) == {"summary", "tried"}

    option_as_text = json.loads(json.dumps(good))
    option_as_text["view"]["state"]["values"]["severity"]["value"]["selected_option"] = "P1"
    answer = await post_payload(bot, option_as_text)
    assert answer.status == 200
    assert answer.json()["errors"] == {"severity": "This field didn't come through. Choose or type it again."}

    no_view_id = json.loads(json.dumps(good))
    del no_view_id["view"]["id"]
    answer = await post_payload(bot, no_view_id)
    assert answer.status == 200 and "out of date" in answer.json()["errors"]["summary"]

    await settle(bot)
    assert (await stored(bot.runtime.db))["handoffs"] == 0
    assert bot.fake.channel_messages(ESC_CHANNEL) == []


async def test_a_payload_without_a_user_is_400_and_logged_once(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    view = await open_form(bot)
    payload = payload_of(bot.slack.view_submission_body(JUNIOR, view, FORM))
    del payload["user"]
    with caplog.at_level(logging.WARNING):
        answer = await post_payload(bot, payload)
    assert answer.status == 400
    assert len(warnings_from(caplog.records, "bot.slack.boundary")) == 1
    assert tracebacks(caplog.records) == []
    card = await escalate(bot)
    click = payload_of(bot.slack.click_body(ANA, card, "claim"))
    click["actions"] = []
    assert (await post_payload(bot, click)).status == 400
    h = await bot.runtime.service.get(await bot.workspace_id(), 1)
    assert h is not None and h.status == "open"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param('{"h": true}', id="bool-as-id"),
        pytest.param('{"h": 2147483648}', id="past-int32"),
        pytest.param('{"h": 9223372036854775808}', id="past-int64"),
        pytest.param('{"h": "1"}', id="string-id"),
        pytest.param('{"h": 1, "v": true}', id="bool-version"),
        pytest.param("[1]", id="not-an-object"),
    ],
)
async def test_a_button_with_an_impossible_id_says_it_is_broken(bot: Bot, value: str) -> None:
    card = await escalate(bot)
    before = len(bot.fake.replies_to(ANA))
    answer = await bot.slack.click(ANA, card, "claim", value=value)
    assert answer.status == 200
    replies = await bot.fake.wait_for(lambda: bot.fake.replies_to(ANA)[before:])
    assert replies[0].text == "That button doesn't carry a valid escalation; nothing changed."
    h = await bot.runtime.service.get(await bot.workspace_id(), 1)
    assert h is not None and h.status == "open"  # `{"h": true}` is not escalation 1


async def test_a_lone_surrogate_is_replaced_and_the_escalation_keeps_its_number(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    view = await open_form(bot)
    payload = payload_of(bot.slack.view_submission_body(JUNIOR, view, FORM))
    values = payload["view"]["state"]["values"]
    values["customer"]["value"]["value"] = "Acme \ud800 Corp"
    values["tried"]["value"]["value"] = "Restarted\u0000 it"
    body = urlencode({"payload": json.dumps(payload)})  # json.dumps writes the surrogate as \ud800
    assert "%5Cud800" in body
    answer = await bot.slack.post(body, "application/x-www-form-urlencoded")
    assert answer.status == 200 and not answer.body, answer.body
    card = (await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL)))[0]
    text = card_text(card)
    assert "ESC-1" in text and "Acme \ufffd Corp" in text and "Restarted it" in text
    assert "\ud800" not in caplog.text
    second = await escalate(bot)
    assert "ESC-2" in card_text(second)  # no number was burned


async def test_nul_in_metadata_and_odd_event_ids_change_nothing_and_fail_nothing(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    view = await open_form(bot)
    payload = payload_of(bot.slack.view_submission_body(JUNIOR, view, FORM))
    payload["view"]["private_metadata"] = '{"channel": "CGEN\\u0000ERAL"}'  # JSON inside JSON: a NUL once decoded
    answer = await post_payload(bot, payload)
    assert answer.status == 200 and not answer.body, answer.body
    card = (await bot.fake.wait_for(lambda: bot.fake.channel_messages(ESC_CHANNEL)))[0]
    assert "ESC-1" in card_text(card)
    await bot.slack.click(ANA, card, "claim")
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))

    reply = {"type": "message", "channel": ESC_CHANNEL, "user": ANA, "text": "on it", "thread_ts": card.ts}
    for event_id in ("Ev" + "X" * 70, "Ev spaces here", "Ev<script>"):
        answer = await bot.slack.event({**reply, "ts": "1700000001.000100"}, event_id=event_id)
        assert answer.status == 400, event_id
    answer = await bot.slack.event({**reply, "ts": "1700000001.000200"}, event_id="Ev\u0000NUL")
    assert answer.status == 200
    ws = await bot.workspace_id()

    async def first_action() -> object:
        h = await bot.runtime.service.get(ws, 1)
        return h is not None and h.first_action_at

    await eventually(first_action)  # the event is acknowledged first and recorded just after
    assert tracebacks(caplog.records) == []


@pytest.mark.parametrize(
    "event",
    [
        {"type": "app_uninstalled"},  # in the manifest; a single-workspace install has nothing to delete
        {"type": "reaction_added", "user": JUNIOR, "reaction": "eyes", "item": {"type": "message"}},
    ],
    ids=["app_uninstalled", "not-subscribed"],
)
async def test_an_event_nobody_handles_is_acknowledged_so_slack_does_not_resend_it(
    bot: Bot, event: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # Bolt answers 404 to an event without a listener; Slack then delivers it again, and turns off
    # an app's subscriptions when too many deliveries fail.
    answer = await bot.slack.event(event)
    assert answer.status == 200, answer.body
    await events_handled(bot, 1)
    # Nothing said or changed in Slack (Bolt's own auth.test to authorize the request aside).
    assert [c.method for c in bot.fake.calls if c.method != "auth.test"] == []
    assert tracebacks(caplog.records) == []


async def test_a_listener_that_fails_still_answers_in_time_and_tells_the_person(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence: an unexpected failure after the ack is told to the clicker, and
    Slack gets its 200 at once (Bolt alone would let the request hang for 3 s, then 404)."""
    card = await escalate(bot)

    async def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.runtime.service, "claim", broken)
    before = len(bot.fake.replies_to(ANA))
    answer = await bot.slack.click(ANA, card, "claim", value=button_value(card, "claim"))
    assert answer.status == 200
    replies = await bot.fake.wait_for(lambda: bot.fake.replies_to(ANA)[before:])
    assert "Something went wrong" in replies[0].text


async def test_signed_requests_still_work_end_to_end(bot: Bot) -> None:
    """The door lets Slack in: the whole flow over the new checks."""
    card = await escalate(bot)
    answer = await bot.slack.click(ANA, card, "claim")
    assert answer.status == 200
    await bot.fake.wait_for(lambda: "Claimed by" in card_text(card))
    assert SECRET not in json.dumps([c.args for c in bot.fake.calls], default=str)

"""Property-based fuzzing of the two doors, `/slack/events` and `/api/messages`, on the real server.

Unverified requests (generated headers and bodies): never a 5xx, never a call to Slack, the Teams
connector or any address in the request, nothing stored, no traceback in the log.
Verified requests of generated shapes, for every action, form, command and event the bot handles:
never a 5xx, always answered by the listener that owns them, no change unless the payload is valid.

Example counts come from the Hypothesis profile: `ci` (the default, sized for the CI budget) or
`deep` for a longer local run: `pytest tests/test_fuzz.py --hypothesis-profile=deep`.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sandbox.fake_teams import BOT_ID, TENANT
from handoff.domain import MAX_ID
from tests.conftest import JUNIOR, SECRET, SENIORS, TEAM
from tests.edge import tracebacks
from tests.live import Live
from tests.test_trust_teams import bad_tokens

OUR_ACTIONS = ["claim", "release", "resolve"]
OUR_VIEWS = ["escalate", "resolve_note", "workspace_config"]
FIELDS = ["summary", "severity", "customer", "tried", "details", "requested_senior", "note", "escalation_channel"]

# ---- strategies -------------------------------------------------------------------------------------

odd_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()),  # any code point, lone surrogates included
    max_size=80,
)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    odd_text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(odd_text, inner, max_size=4)),
    max_leaves=12,
)
header_value = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b),
    st.sampled_from([b"", b"abc", b"123.5", b" +1", b"v0=00", b"v0=" + b"a" * 64, b"-1", b"99999999999999999999"]),
    st.builds(lambda d: str(int(time.time()) + d).encode(), st.integers(-400, 400)),
)


def ids(prefix: str) -> st.SearchStrategy[Any]:
    """Ids as Slack writes them, plus everything it never would."""
    return st.one_of(st.sampled_from([f"{prefix}0ACME", f"{prefix}{'X' * 70}", "", f"{prefix}\u0000NUL"]), json_scalar)


def card_action_is_valid(value: Any) -> bool:
    """An independent reading of what a card button may carry: a JSON object with an integer id
    (not a boolean) in the database's range, and perhaps a version."""
    if not isinstance(value, str):
        return False
    try:
        parsed = json.loads(value)
    except ValueError:
        return False
    if not isinstance(parsed, dict) or set(parsed) - {"h", "v"}:
        return False

    def an_id(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= MAX_ID

    return an_id(parsed.get("h")) and (parsed.get("v") is None or an_id(parsed["v"]))


def no_new_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    found = tracebacks(caplog.records)
    assert found == [], found


# ---- unverified: Slack --------------------------------------------------------------------------------


@st.composite
def unsigned_slack_requests(draw: st.DrawFn, outside: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    hook = f"{outside}/hook"
    body = draw(
        st.one_of(
            st.binary(max_size=400),
            st.builds(
                lambda text, user: urlencode(
                    {
                        "command": "/escalate",
                        "text": text,
                        "team_id": TEAM,
                        "user_id": user,
                        "trigger_id": "trig.x",
                        "response_url": hook,
                    }
                ).encode("utf-8", "surrogatepass"),
                odd_text,
                st.sampled_from([JUNIOR, SENIORS[0]]),
            ),
            st.builds(
                lambda payload: urlencode({"payload": json.dumps({**payload, "response_url": hook})}).encode(),
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["block_actions", "view_submission", "shortcut"]), "x": json_value}
                ),
            ),
            st.builds(lambda v: json.dumps(v).encode(), json_value),
        )
    )
    headers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [b"X-Slack-Request-Timestamp", b"X-Slack-Signature", b"Content-Type", b"X-Slack-Retry-Num"]
                ),
                header_value,
            ),
            max_size=5,
        )
    )
    content_type = draw(st.sampled_from([b"application/x-www-form-urlencoded", b"application/json", b"text/plain"]))
    return body, [(b"Content-Type", content_type), *headers]


def test_unverified_slack_requests_reach_nothing(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    before_out, before_state = live.outbound(), live.state()

    @given(unsigned_slack_requests(live.outside_url))
    def example(request: tuple[bytes, list[tuple[bytes, bytes]]]) -> None:
        body, headers = request
        answer = live.post("/slack/events", body, headers)
        # 401, or 400 where aiohttp could not even read it as HTTP (a NUL in a header).
        assert answer.status in (400, 401), (answer.status, answer.body[:200])
        assert live.outbound() == before_out
        no_new_tracebacks(caplog)

    example()
    assert live.state() == before_state


# ---- unverified: Teams ----------------------------------------------------------------------------------


@st.composite
def unsigned_teams_requests(draw: st.DrawFn, live: Live) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    activity = {
        "type": draw(st.sampled_from(["message", "invoke", "conversationUpdate", "x"])),
        "text": draw(odd_text),
        "serviceUrl": draw(st.sampled_from([live.outside_url + "/", live.connector.service_url])),
        "from": {"id": "29:x", "aadObjectId": "aad-x"},
        "conversation": {"id": "a:1", "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}},
        "recipient": {"id": BOT_ID},
        "value": draw(json_value),
    }
    body = draw(st.one_of(st.just(json.dumps(activity).encode()), st.binary(max_size=300)))
    tokens = list(bad_tokens(live.login, activity["serviceUrl"]).values())
    auth = draw(
        st.one_of(
            st.none(),
            st.sampled_from([f"Bearer {t}".encode() for t in tokens]),
            header_value.map(lambda v: b"Bearer " + v),
            header_value,
        )
    )
    headers = [(b"Content-Type", b"application/json")]
    if auth is not None:
        headers.append((b"Authorization", auth))
    return body, headers


def test_unverified_teams_requests_reach_nothing(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    before_out, before_state = live.outbound(), live.state()

    @given(unsigned_teams_requests(live))
    def example(request: tuple[bytes, list[tuple[bytes, bytes]]]) -> None:
        body, headers = request
        answer = live.post("/api/messages", body, headers)
        assert answer.status in (400, 401), (answer.status, answer.body[:200])
        assert live.outbound() == before_out
        assert live.login.token_requests == []  # not even a token was fetched for them
        no_new_tracebacks(caplog)

    example()
    assert live.state() == before_state


# ---- verified: Slack, every listener ---------------------------------------------------------------------


def seed(live: Live) -> None:
    """One open escalation (ESC-1, id 1), so clicks and forms have something real to aim at."""

    async def escalate() -> None:
        sim = live.slack_sim
        await sim.command(JUNIOR, "")
        view = (await live.slack.wait_for(lambda: live.slack.views_for(JUNIOR)))[-1]
        answer = await sim.submit(
            JUNIOR, view, {"summary": "Seed", "severity": "P2", "tried": "restarts", "customer": "Acme"}
        )
        assert answer.status == 200 and not answer.body
        await live.slack.wait_for(lambda: live.slack.channel_messages("C0ESCALATE"))

    live.run(escalate())
    live.settle()


def user_block(user: Any) -> Any:
    return st.one_of(
        st.just({"id": user, "team_id": TEAM}),
        st.fixed_dictionaries({"id": ids("U")}),
        json_value,
    )


@st.composite
def signed_slack_payloads(draw: st.DrawFn, hook: str) -> tuple[str, dict[str, Any] | str, bool]:
    """(kind, payload, may_change_state)."""
    user = draw(st.sampled_from([JUNIOR, SENIORS[0], SENIORS[1], "U0OUTSIDER"]))
    kind = draw(st.sampled_from(["command", "block_actions", "view_submission", "message_action", "event"]))
    team = {"id": TEAM, "domain": "acme"}
    if kind == "command":
        fields = {
            "command": "/escalate",
            "text": draw(st.one_of(odd_text, st.sampled_from(["help", "mine", "stats", "config", "  MINE "]))),
            "team_id": TEAM,
            "user_id": draw(st.one_of(st.just(user), ids("U"))),
            "channel_id": draw(st.one_of(st.just("CGENERAL"), ids("C"))),
            "trigger_id": draw(st.one_of(st.just("trig.U0JUNIOR.x"), ids("t"))),
            "response_url": hook,
        }
        fields = {k: v for k, v in fields.items() if v is not None and (k == "command" or draw(st.integers(0, 9)) > 0)}
        encoded = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()}
        return "command", urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in encoded.items()}), False
    if kind == "block_actions":
        value = draw(
            st.one_of(
                st.builds(json.dumps, st.fixed_dictionaries({"h": st.integers(-5, 2**64), "v": json_scalar})),
                st.builds(json.dumps, json_value),
                json_scalar,
                st.just('{"h": 1}'),
                st.just('{"h": true}'),
            )
        )
        action = {
            "action_id": draw(st.sampled_from(OUR_ACTIONS)),
            "block_id": "card_actions",
            "type": "button",
            "value": value,
        }
        payload = {
            "type": "block_actions",
            "team": team,
            "user": draw(user_block(user)),
            "api_app_id": "A0ESCALATE",
            "container": draw(st.one_of(st.just({"type": "message"}), st.just({"type": "view"}), json_value)),
            "trigger_id": "trig.x",
            "channel": {"id": "C0ESCALATE"},
            "response_url": hook,
            "actions": draw(st.one_of(st.just([action]), st.lists(json_value, max_size=2))),
        }
        # A valid button may claim or release ESC-1: anything else must change nothing.
        return "block_actions", payload, card_action_is_valid(value)
    if kind == "view_submission":
        callback = draw(st.sampled_from(OUR_VIEWS))
        values = draw(
            st.one_of(
                st.dictionaries(
                    st.sampled_from(FIELDS),
                    st.dictionaries(st.sampled_from(["value", "x"]), json_value, max_size=2),
                    max_size=6,
                ),
                json_value,
            )
        )
        if callback == "escalate" and isinstance(values, dict):
            values.pop("tried", None)  # never a complete form: storing one is not what this property is about
        view = {
            "id": draw(st.one_of(st.just("VFUZZ1"), ids("V"))),
            "callback_id": callback,
            "type": "modal",
            "private_metadata": draw(st.one_of(odd_text, st.builds(json.dumps, json_value), st.just('{"h": 1}'))),
            "state": {"values": values},
        }
        payload = {"type": "view_submission", "team": team, "user": draw(user_block(user)), "view": view}
        # resolve_note on ESC-1 by someone who doesn't hold it (nobody does) changes nothing either.
        return "view_submission", payload, False
    if kind == "message_action":
        payload = {
            "type": "message_action",
            "callback_id": "escalate_message",
            "team": team,
            "user": draw(user_block(user)),
            "channel": draw(st.one_of(st.just({"id": "CSUPPORT"}), json_value)),
            "message": draw(st.one_of(st.fixed_dictionaries({"text": odd_text, "ts": odd_text}), json_value)),
            "trigger_id": draw(st.one_of(st.just("trig.x"), json_scalar)),
            "response_url": hook,
        }
        return "message_action", payload, False
    event = draw(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["message", "app_home_opened", "reaction_added"]),
                "user": st.one_of(st.just(user), json_scalar),
                "channel": st.one_of(st.just("C0ESCALATE"), json_scalar),
                "text": odd_text,
                "ts": st.one_of(st.just("1700000000.000100"), json_scalar),
                "thread_ts": st.one_of(st.just("1700000000.000001"), json_scalar),
                "tab": st.one_of(st.just("home"), json_scalar),
            }
        )
    )
    payload = {
        "type": "event_callback",
        "team_id": TEAM,
        "event": event,
        "event_id": draw(st.one_of(st.builds(lambda n: f"Ev{n}", st.integers(0, 10**9)), json_scalar, odd_text)),
        "event_time": 1,
    }
    return "event", payload, False


def test_signed_slack_payloads_of_any_shape_are_answered_and_change_nothing_invalid(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    seed(live)

    @given(signed_slack_payloads(live.outside_url + "/hook"))
    def example(case: tuple[str, dict[str, Any] | str, bool]) -> None:
        kind, payload, may_change = case
        before = live.state()
        if kind == "command":
            assert isinstance(payload, str)
            body, content_type = payload, "application/x-www-form-urlencoded"
        elif kind == "event":
            body, content_type = json.dumps(payload), "application/json"
        else:
            body, content_type = urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        signed = live.slack_sim.sign(body)
        headers = [(b"Content-Type", content_type.encode()), *((k.encode(), v.encode()) for k, v in signed.items())]
        answer = live.post("/slack/events", body.encode(), headers)
        assert answer.status < 500, (answer.status, answer.body[:300])
        # Everything aimed at one of our listeners is answered by it (Bolt says 404 only when none is).
        assert answer.status in (200, 400), (kind, answer.status, answer.body[:300])
        if not may_change:
            live.settle()
            assert live.state() == before
        no_new_tracebacks(caplog)

    example()
    assert SECRET not in caplog.text


# ---- verified: Teams, every route ------------------------------------------------------------------------


@st.composite
def signed_teams_activities(draw: st.DrawFn, live: Live) -> dict[str, Any]:
    who = {"id": "29:aad-fuzz", "name": draw(odd_text), "aadObjectId": draw(st.one_of(st.just("aad-fuzz"), ids("a")))}
    channel = draw(st.booleans())
    conversation = (
        {"id": "19:fuzz@thread.tacv2;messageid=1", "conversationType": "channel", "isGroup": True}
        if channel
        else {"id": "a:personal-fuzz", "conversationType": "personal"}
    )
    activity: dict[str, Any] = {
        "id": "f:1",
        "serviceUrl": live.connector.service_url,
        "channelId": "msteams",
        "from": draw(st.one_of(st.just(who), json_value)),
        "conversation": {**conversation, "tenantId": TENANT},
        "recipient": {"id": BOT_ID, "name": "Escalation Bot"},
        "channelData": {"tenant": {"id": TENANT}},
    }
    kind = draw(st.sampled_from(["message", "invoke", "submit"]))
    if kind == "message":
        words = st.sampled_from(["setup", "setup leads", "escalate", "ESCALATE ", "help", "escalate\nbilling: x"])
        activity.update(type="message", text=draw(st.one_of(words, odd_text)))
    elif kind == "invoke":
        data = draw(
            st.one_of(
                st.fixed_dictionaries({"h": st.one_of(st.integers(-5, 2**64), json_scalar), "note": json_value}),
                json_value,
            )
        )
        activity.update(
            type="invoke",
            name=draw(st.sampled_from(["adaptiveCard/action", "x"])),
            value=draw(
                st.one_of(
                    st.just(
                        {
                            "action": {
                                "type": "Action.Execute",
                                "verb": draw(st.sampled_from(["claim", "release", "resolve", "zap"])),
                                "data": data,
                            },
                            "trigger": "manual",
                        }
                    ),
                    json_value,
                )
            ),
        )
    else:
        value = draw(st.dictionaries(st.sampled_from([*FIELDS, "verb", "action"]), json_value, max_size=6))
        value.pop("tried", None)  # never a complete form
        activity.update(type="message", replyToId="1700000000000", value={"verb": "escalate", **value})
    return activity


def test_signed_teams_activities_of_any_shape_are_answered_and_change_nothing_invalid(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    seed(live)

    @given(signed_teams_activities(live))
    def example(activity: dict[str, Any]) -> None:
        before = live.state()
        answer = live.run(live.teams_sim.post(activity))
        assert answer.status < 500, (answer.status, answer.body)
        if activity.get("type") == "invoke" and activity.get("name") == "adaptiveCard/action":
            assert answer.status in (200, 400), (answer.status, answer.body)
        live.settle()
        # No Teams escalation exists and Slack's ESC-1 is behind the tenant wall: nothing can change.
        assert live.state() == before
        no_new_tracebacks(caplog)

    example()


# ---- the leads' page ----------------------------------------------------------------------------------

DASHBOARD_PATHS = [
    *("/dashboard", "/dashboard/", "/dashboard/export.csv", "/dashboard/static/dashboard.css"),
    *("/dashboard/baseline", "/dashboard/signout", "/dashboard/signin/", "/dashboard/x/../../metrics"),
]
PAGE_WORDS = ["this-week", "last-week", "4w", "13w", "custom", "all", "1", "-1", "2026-02-30", "9999-12-31"]
PAGE_WORDS += ["0001-01-01", "2026-01-01", "99999999999999999999", "%00", "%ZZ", "..%2f..%2f", "1e308", "nan"]
query_value = st.one_of(odd_text, st.sampled_from(PAGE_WORDS))
FIELDS = ["period", "from", "to", "queue", "text", "minutes", "csrf", "back"]


@st.composite
def dashboard_requests(draw: st.DrawFn, cookie: str | None) -> tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]]:
    """(method, target, body, headers): any path under /dashboard with any query, cookie and form."""
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"DELETE"]))
    path = draw(
        st.one_of(
            st.sampled_from(DASHBOARD_PATHS),
            st.builds(lambda t: "/dashboard/signin/" + t, st.text("abcXYZ019-_%./", max_size=120)),
            st.builds(lambda t: "/dashboard/static/" + t, st.text("abc.%/-_", max_size=40)),
        )
    )
    fields = draw(st.dictionaries(st.sampled_from(FIELDS), query_value, max_size=5))
    query = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in fields.items()})
    target = (path + ("?" + query if query and draw(st.booleans()) else "")).encode("utf-8", "surrogatepass")
    body = query.encode() if method == b"POST" else b""
    headers = [(b"Content-Type", b"application/x-www-form-urlencoded")]
    jar = draw(
        st.one_of(st.none(), st.just(cookie) if cookie else st.none(), header_value.map(lambda v: v.decode("latin-1")))
    )
    if jar is not None:
        headers.append((b"Cookie", b"eb_dashboard=" + jar.encode("latin-1", "replace")))
    return method, target, body, headers


def ask(live: Live, request: tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]]) -> Any:
    from tests.edge import raw_request

    method, target, body, headers = request
    return live.run(raw_request(live.url, method, target, body, headers))


def test_the_leads_page_without_a_session_serves_nothing(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    seed(live)
    before_out, before_state = live.outbound(), live.state()

    @given(dashboard_requests(None))
    def example(request: tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]]) -> None:
        answer = ask(live, request)
        # 401 without a session; 403 for a link that does not work; a redirect to the page; 405 for
        # a method the route has not; 400 where aiohttp could not read it as HTTP at all.
        assert answer.status in (302, 400, 401, 403, 405), (request, answer.status, answer.body[:200])
        assert b"data-figure" not in answer.body and b"Seed" not in answer.body
        assert "set-cookie" not in answer.headers
        assert live.outbound() == before_out
        no_new_tracebacks(caplog)

    example()
    assert live.state() == before_state


def test_a_signed_in_lead_sending_anything_gets_an_answer_never_an_error(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    seed(live)
    lead = "U0FUZZLEAD"
    live.slack.admins.add(lead)  # a workspace admin: a lead of the whole workspace

    async def session() -> str:
        service = live.runtime.service
        started = await service.sign_in(await service.sign_in_link(await service.workspace_id("slack", TEAM), lead))
        assert started is not None
        return started[0]

    cookie = live.run(session())
    before_state = live.state()

    @given(dashboard_requests(cookie))
    def example(request: tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]]) -> None:
        answer = ask(live, request)
        assert answer.status < 500, (request, answer.status, answer.body[:300])
        no_new_tracebacks(caplog)

    example()
    assert live.state() == before_state  # what a lead sends changes no escalation

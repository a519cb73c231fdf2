"""The edge's fast decoding of interactive payloads gives exactly what urllib and Bolt would."""

from __future__ import annotations

import json
from urllib.parse import quote_plus, unquote_plus, urlencode

from hypothesis import given
from hypothesis import strategies as st
from slack_bolt.request.internals import parse_body

from bot.inbound import scrub
from bot.slack import boundary

# Text of every kind: escapes of UTF-8, stray and broken escapes, raw non-ASCII, backslashes, '+'.
pieces = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["%", "%2", "%zz", "%C3", "%C3%A9", "%ED%A0%80", "%00", "\\", "\\x41", "+", "%2B", "%5C"]),
    st.builds(quote_plus, st.text(max_size=20)),
)
form_values = st.lists(pieces, max_size=12).map("".join)


@given(form_values)
def test_unquoting_is_urllibs_for_any_text(value: str) -> None:
    assert boundary.unquote_plus(value) == unquote_plus(value)


any_text = st.text(st.characters(exclude_categories=()), max_size=12)  # NUL and lone surrogates too
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=20,
)


@given(st.dictionaries(any_text, json_values, max_size=6), st.booleans())
def test_a_payload_reads_as_bolt_reads_it_and_is_scrubbed_where_it_needs_to_be(payload: dict, ascii_only: bool) -> None:
    text = json.dumps(payload, ensure_ascii=ascii_only)
    if not ascii_only and any("\ud800" <= c <= "\udfff" for c in text):
        text = json.dumps(payload)  # a lone surrogate reaches the wire only as a \u escape
    body = urlencode({"payload": text})
    parsed, unstorable = boundary._body(body, "application/x-www-form-urlencoded")
    assert parsed == parse_body(body, "application/x-www-form-urlencoded")
    if not unstorable:  # only skipped where scrubbing changes nothing
        assert scrub(parsed) == parsed


def test_nul_and_lone_surrogates_in_a_payload_are_still_scrubbed() -> None:
    body = urlencode({"payload": json.dumps({"type": "x", "text": "a\x00b\ud800c"})})
    parsed, unstorable = boundary._body(body, None)
    assert unstorable and scrub(parsed)["text"] == "ab\ufffdc"

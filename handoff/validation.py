"""Validation of what a person typed into the escalation form.

Errors are keyed by field name and written for the person who typed them;
the platform adapter shows each next to its field.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from handoff.domain import Draft, Severity

SUMMARY_MAX = 150
TEXT_MAX = 3000
CUSTOMER_MAX = 300
NOTE_MAX = 3000

# Control characters other than newline and tab have no business in a ticket and
# can confuse renderers; they are dropped rather than refused.
_CONTROL = {c for c in map(chr, range(32)) if c not in "\n\t"} | {"\x7f"}


def clean(text: str | None, *, single_line: bool = False) -> str:
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch not in _CONTROL)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if single_line:
        text = " ".join(text.split())
    return text.strip()


class FormErrors(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _length(errors: dict[str, str], name: str, value: str, limit: int, label: str) -> None:
    if len(value) > limit:
        errors[name] = f"{label} is {len(value):,} characters; the limit is {limit:,}. Please shorten it."


def validate_draft(fields: dict[str, Any], *, requester_id: str, source: dict[str, Any] | None = None) -> Draft:
    """Turn raw form fields into a Draft, or raise FormErrors naming each bad field.

    An escalation made from a message (`source`) may leave "what was tried" empty: its thread
    goes on the card instead."""
    errors: dict[str, str] = {}
    summary = clean(fields.get("summary"), single_line=True)
    tried = clean(fields.get("tried"))
    details = clean(fields.get("details"))
    customer = clean(fields.get("customer"))
    severity_raw = (fields.get("severity") or "P3").strip().upper()
    senior = (fields.get("requested_senior") or "").strip() or None

    if not summary:
        errors["summary"] = "Say in one line what is wrong."
    _length(errors, "summary", summary, SUMMARY_MAX, "The summary")
    if not tried and source is None:
        errors["tried"] = "Say what you have already tried; it saves the senior from asking."
    _length(errors, "tried", tried, TEXT_MAX, "What was tried")
    _length(errors, "details", details, TEXT_MAX, "Details")
    _length(errors, "customer", customer, CUSTOMER_MAX, "Customer / ticket")
    try:
        severity = Severity(severity_raw)
    except ValueError:
        errors["severity"] = "Pick a severity from P1 to P4."
        severity = Severity.P3
    if senior is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,64}", senior):
            errors["requested_senior"] = "That is not a person this workspace knows."
        elif senior == requester_id:
            errors["requested_senior"] = "Ask someone other than yourself."
    if errors:
        raise FormErrors(errors)
    return Draft(
        summary=summary,
        severity=severity,
        tried=tried,
        details=details,
        customer=customer,
        requested_senior_id=senior,
        origin_channel=(fields.get("origin_channel") or None),
        source=source,
    )


def validate_note(note: str | None) -> str:
    text = clean(note)
    if not text:
        raise FormErrors({"note": "Write what fixed it, so the next person can find it."})
    if len(text) > NOTE_MAX:
        raise FormErrors({"note": f"The note is {len(text):,} characters; the limit is {NOTE_MAX:,}."})
    return text

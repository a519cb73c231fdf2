"""What every entry point does to a payload after it is verified and before anyone reads it.

Text arrives as JSON or form data from the internet. Two things in it can never be stored:
NUL (PostgreSQL's text refuses it) and lone UTF-16 surrogates (`"\\ud800"` in JSON decodes to
a code point no database or UTF-8 encoder accepts). They are dropped and replaced here, once,
so neither the listeners nor storage ever see them and a bad character never fails a write
(which, on PostgreSQL, would also burn an ESC number).
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    if _SURROGATE.search(value):
        value = _SURROGATE.sub(REPLACEMENT, value)
    return value


def scrub(payload: Any, *, depth: int = 0) -> Any:
    """The payload with every string (keys included) made storable. Nesting deeper than any
    real payload (64 levels) is cut off rather than followed."""
    if depth > 64:
        return None
    if isinstance(payload, str):
        return clean_text(payload)
    if isinstance(payload, dict):
        return {(clean_text(k) if isinstance(k, str) else k): scrub(v, depth=depth + 1) for k, v in payload.items()}
    if isinstance(payload, list):
        return [scrub(v, depth=depth + 1) for v in payload]
    return payload


def text_at(payload: Any, *path: str) -> str | None:
    """The string at `path` inside nested dicts, or None when any step is missing or of another type."""
    node = payload
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, str) else None


def dict_at(payload: Any, *path: str) -> dict[str, Any]:
    """The dict at `path`, or an empty one when any step is missing or of another type."""
    node = payload
    for key in path:
        if not isinstance(node, dict):
            return {}
        node = node.get(key)
    return node if isinstance(node, dict) else {}

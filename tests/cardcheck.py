"""Adaptive Cards checked against Microsoft's official 1.5 schema (vendored in tests/schemas)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

SCHEMAS = Path(__file__).resolve().parent / "schemas"


@cache
def _validator() -> jsonschema.Draft6Validator:
    return jsonschema.Draft6Validator(json.loads((SCHEMAS / "adaptive-card-1.5.json").read_text()))


def card_problems(card: dict[str, Any]) -> list[str]:
    """Why this card is not a valid Adaptive Card 1.5 (empty when it is), or not one every Teams
    client can use: a `fallbackText` for clients that cannot render it, and a label on every input
    (screen readers, and mobile clients, which hide placeholders once typing starts)."""
    problems = []
    error = best_match(_validator().iter_errors(card))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "card"
        problems.append(f"{where}: {error.message[:300]}")
    if not str(card.get("fallbackText") or "").strip():
        problems.append("card: no fallbackText")
    problems += [f"input {el.get('id')!r}: no label" for el in _inputs(card) if not str(el.get("label") or "").strip()]
    return problems


def _inputs(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [el for item in node for el in _inputs(item)]
    if not isinstance(node, dict):
        return []
    found = [node] if str(node.get("type", "")).startswith("Input.") else []
    return found + [el for value in node.values() if isinstance(value, list | dict) for el in _inputs(value)]

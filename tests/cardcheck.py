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
    """Why this card is not a valid Adaptive Card 1.5 (empty when it is)."""
    error = best_match(_validator().iter_errors(card))
    if error is None:
        return []
    where = "/".join(str(p) for p in error.absolute_path) or "card"
    return [f"{where}: {error.message[:300]}"]

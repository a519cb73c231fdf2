"""Action ids, callback ids, and the typed metadata carried in buttons and modals.

Metadata is a pydantic model serialised to JSON, so a forged or stale value
fails to parse instead of being half-understood. It never carries a workspace:
that always comes from the signed request.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ActionId(enum.StrEnum):
    CLAIM = "claim"
    RELEASE = "release"
    RESOLVE = "resolve"


class CallbackId(enum.StrEnum):
    ESCALATE = "escalate"
    RESOLVE = "resolve_note"


class Field_(enum.StrEnum):
    """Block ids of the escalation modal (the action id inside each block is `value`)."""

    SUMMARY = "summary"
    SEVERITY = "severity"
    CUSTOMER = "customer"
    TRIED = "tried"
    DETAILS = "details"
    SENIOR = "requested_senior"
    NOTE = "note"


class BadMetadata(ValueError):
    pass


class _Meta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def dump(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def parse(cls, raw: str | None) -> _Meta:
        try:
            return cls.model_validate_json(raw or "")
        except ValidationError as exc:
            raise BadMetadata(str(exc)) from None


class CardAction(_Meta):
    """The value of a card button: which handoff, and the version the card showed."""

    h: int = Field(gt=0)
    v: int | None = Field(default=None, ge=1)


class EscalateMeta(_Meta):
    """The escalate modal's private_metadata: where /escalate was run."""

    channel: str | None = Field(default=None, max_length=64)


class ResolveMeta(_Meta):
    h: int = Field(gt=0)
    channel: str | None = Field(default=None, max_length=64)

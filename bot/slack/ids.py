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
    CONFIG = "workspace_config"
    # The message shortcut "Escalate this message" (its callback id is also in manifest.yml).
    ESCALATE_MESSAGE = "escalate_message"


class Field_(enum.StrEnum):
    """Block ids of the escalation modal (the action id inside each block is `value`)."""

    SUMMARY = "summary"
    SEVERITY = "severity"
    CUSTOMER = "customer"
    TRIED = "tried"
    DETAILS = "details"
    SENIOR = "requested_senior"
    NOTE = "note"
    # /escalate config
    ESCALATION_CHANNEL = "escalation_channel"
    LEADS_CHANNEL = "leads_channel"
    SENIORS = "senior_user_ids"
    SENIOR_GROUP = "senior_usergroup"
    LEADS = "lead_user_ids"


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
    """The escalate modal's private_metadata: where /escalate was run, and for "Escalate this
    message", which message (its channel, ts and thread)."""

    channel: str | None = Field(default=None, max_length=64)
    src_ts: str | None = Field(default=None, max_length=32, pattern=r"^\d+\.\d+$")
    src_thread: str | None = Field(default=None, max_length=32, pattern=r"^\d+\.\d+$")


class ResolveMeta(_Meta):
    h: int = Field(gt=0)
    channel: str | None = Field(default=None, max_length=64)

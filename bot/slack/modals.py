"""The escalation form and the resolution-note form, and reading what was typed."""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.models.blocks import (
    ContextBlock,
    ConversationSelectElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
    UserMultiSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot.slack import text as t
from bot.slack.ids import CallbackId, EscalateMeta, ResolveMeta
from bot.slack.ids import Field_ as F
from bot.slack.workspaces import WorkspaceConfig
from handoff.domain import Handoff, Severity
from handoff.validation import CUSTOMER_MAX, NOTE_MAX, SUMMARY_MAX, TEXT_MAX

VALUE = "value"  # the action id of the element inside each input block


def _severity_option(s: Severity) -> Option:
    return Option(value=s.value, text=PlainTextObject(text=s.label))


def prefill_from_text(typed: str) -> tuple[str, str]:
    """Split `/escalate <text>` into a summary and, when it is long, details."""
    typed = typed.strip()
    first_line = " ".join(typed.splitlines()[0].split()) if typed else ""
    if len(first_line) <= SUMMARY_MAX and "\n" not in typed:
        return first_line, ""
    return t.cut_plain(first_line, SUMMARY_MAX), t.cut_plain(typed, TEXT_MAX)


def escalate_modal(
    *,
    summary: str = "",
    details: str = "",
    origin_channel: str | None = None,
    source_ts: str | None = None,
    source_thread: str | None = None,
) -> View:
    summary_el = PlainTextInputElement(
        action_id=VALUE, max_length=SUMMARY_MAX, placeholder="Customer can't log in after SSO change"
    )
    if summary:
        summary_el.initial_value = t.cut_plain(summary, SUMMARY_MAX)
    details_el = PlainTextInputElement(
        action_id=VALUE, multiline=True, max_length=TEXT_MAX, placeholder="Error messages, request ids, logs"
    )
    if details:
        details_el.initial_value = t.cut_plain(details, TEXT_MAX)
    return View(
        type="modal",
        callback_id=CallbackId.ESCALATE,
        title=PlainTextObject(text="Escalate"),
        submit=PlainTextObject(text="Escalate"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=EscalateMeta(channel=origin_channel, src_ts=source_ts, src_thread=source_thread).dump(),
        blocks=[
            *(
                [
                    ContextBlock(
                        elements=[
                            MarkdownTextObject(
                                text=":speech_balloon: Escalating a message: its thread goes on the card "
                                "(copied where I can read it, linked where I can't)."
                            )
                        ]
                    )
                ]
                if source_ts
                else []
            ),
            InputBlock(block_id=F.SUMMARY, label="What is wrong? (one line)", element=summary_el),
            InputBlock(
                block_id=F.SEVERITY,
                label="Severity",
                element=StaticSelectElement(
                    action_id=VALUE,
                    options=[_severity_option(s) for s in Severity],
                    initial_option=_severity_option(Severity.P3),
                ),
            ),
            InputBlock(
                block_id=F.CUSTOMER,
                label="Customer / ticket",
                optional=True,
                element=PlainTextInputElement(
                    action_id=VALUE,
                    max_length=CUSTOMER_MAX,
                    placeholder="Acme Corp · ticket #4821 · EU region",
                ),
            ),
            InputBlock(
                block_id=F.TRIED,
                label="What have you tried?",
                hint="Each thing you tried and what happened. This is what saves the senior a call.",
                element=PlainTextInputElement(action_id=VALUE, multiline=True, max_length=TEXT_MAX),
            ),
            InputBlock(block_id=F.DETAILS, label="Details / errors", optional=True, element=details_el),
            InputBlock(
                block_id=F.SENIOR,
                label="Ask a specific senior",
                optional=True,
                element=UserSelectElement(action_id=VALUE, placeholder="Anyone on the team"),
            ),
        ],
    )


def _value(values: dict[str, Any], block: str) -> str | None:
    element = (values.get(block) or {}).get(VALUE) or {}
    if "selected_option" in element:
        opt = element.get("selected_option") or {}
        return opt.get("value")
    if "selected_user" in element:
        return element.get("selected_user")
    if "selected_conversation" in element:
        return element.get("selected_conversation")
    v = element.get("value")
    return v if isinstance(v, str) else None


def read_escalate_form(view: dict[str, Any]) -> dict[str, str | None]:
    values = (view.get("state") or {}).get("values") or {}
    return {
        "summary": _value(values, F.SUMMARY),
        "severity": _value(values, F.SEVERITY),
        "customer": _value(values, F.CUSTOMER),
        "tried": _value(values, F.TRIED),
        "details": _value(values, F.DETAILS),
        "requested_senior": _value(values, F.SENIOR),
    }


def resolve_modal(h: Handoff, *, channel: str | None) -> View:
    return View(
        type="modal",
        callback_id=CallbackId.RESOLVE,
        title=PlainTextObject(text=f"Resolve {h.ref}"),
        submit=PlainTextObject(text="Resolve"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=ResolveMeta(h=h.id, channel=channel).dump(),
        blocks=[
            ContextBlock(elements=[MarkdownTextObject(text="*" + t.fit(h.summary, 1900) + "*")]),
            InputBlock(
                block_id=F.NOTE,
                label="What fixed it?",
                hint=f"Sent to {h.ref}'s requester and kept for the next person with this problem.",
                element=PlainTextInputElement(action_id=VALUE, multiline=True, max_length=NOTE_MAX),
            ),
        ],
    )


def read_note(view: dict[str, Any]) -> str | None:
    values = (view.get("state") or {}).get("values") or {}
    return _value(values, F.NOTE)


def field_errors(errors: dict[str, str]) -> dict[str, str]:
    """Map validation errors (by field name) to the modal's block ids."""
    known = {f.value for f in F}
    return {(k if k in known else F.SUMMARY.value): v for k, v in errors.items()}


def _selected_users(values: dict[str, Any], block: str) -> list[str]:
    element = (values.get(block) or {}).get(VALUE) or {}
    users = element.get("selected_users") or []
    return [u for u in users if isinstance(u, str)]


CHANNELS_ONLY = {"include": ["public", "private"], "exclude_bot_users": True}


def _channel_select(current: str | None) -> ConversationSelectElement:
    el = ConversationSelectElement(
        action_id=VALUE, filter={"include": ["public", "private"], "exclude_bot_users": True}
    )
    if current:
        el.initial_conversation = current
    return el


def _people_select(current: list[str], placeholder: str) -> UserMultiSelectElement:
    el = UserMultiSelectElement(action_id=VALUE, placeholder=placeholder)
    if current:
        el.initial_users = current[:100]
    return el


def config_modal(cfg: WorkspaceConfig) -> View:
    """`/escalate config`: this workspace's channels and seniors (workspace admins only)."""
    esc = _channel_select(cfg.escalation_channel)
    leads = _channel_select(cfg.leads_channel)
    seniors = _people_select(cfg.senior_user_ids, "Anyone may claim")
    lead_users = _people_select(cfg.lead_user_ids, "Post alerts to the leads channel instead")
    group = PlainTextInputElement(action_id=VALUE, max_length=20, placeholder="S0123ABCD")
    if cfg.senior_usergroup:
        group.initial_value = cfg.senior_usergroup
    return View(
        type="modal",
        callback_id=CallbackId.CONFIG,
        title=PlainTextObject(text="Escalation settings"),
        submit=PlainTextObject(text="Save"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            InputBlock(
                block_id=F.ESCALATION_CHANNEL,
                label="Escalation channel",
                hint="Cards go here. Invite the bot to it.",
                element=esc,
            ),
            InputBlock(
                block_id=F.LEADS_CHANNEL,
                label="Leads channel",
                optional=True,
                hint="The weekly report and unclaimed-escalation alerts.",
                element=leads,
            ),
            InputBlock(block_id=F.SENIORS, label="Seniors who may claim", optional=True, element=seniors),
            InputBlock(
                block_id=F.SENIOR_GROUP,
                label="…or a user group of seniors (its id)",
                optional=True,
                element=group,
            ),
            InputBlock(
                block_id=F.LEADS, label="Leads to DM about unclaimed escalations", optional=True, element=lead_users
            ),
        ],
    )


def read_config_form(view: dict[str, Any]) -> tuple[WorkspaceConfig, dict[str, str]]:
    """The settings typed into the config modal, and field errors (empty when fine)."""
    values = (view.get("state") or {}).get("values") or {}
    errors: dict[str, str] = {}
    group = (_value(values, F.SENIOR_GROUP) or "").strip().upper() or None
    if group and not re.fullmatch(r"S[A-Z0-9]{4,19}", group):
        errors[F.SENIOR_GROUP] = "A user group id looks like S0123ABCD (Slack shows it in the group's link)."
    channel = _value(values, F.ESCALATION_CHANNEL)
    if not channel:
        errors[F.ESCALATION_CHANNEL] = "Pick the channel the cards go to."
    cfg = WorkspaceConfig(
        escalation_channel=channel,
        leads_channel=_value(values, F.LEADS_CHANNEL),
        senior_user_ids=_selected_users(values, F.SENIORS),
        senior_usergroup=group,
        lead_user_ids=_selected_users(values, F.LEADS),
    )
    return cfg, errors

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

from bot.inbound import dict_at, text_at
from bot.slack import text as t
from bot.slack.ids import CallbackId, EscalateMeta, MoveMeta, ResolveMeta
from bot.slack.ids import Field_ as F
from bot.slack.workspaces import WorkspaceConfig
from handoff.domain import Handoff, Queue, Severity, Status
from handoff.validation import CUSTOMER_MAX, NOTE_MAX, SUMMARY_MAX, TEXT_MAX

VALUE = "value"  # the action id of the element inside each input block


def _severity_option(s: Severity) -> Option:
    return Option(value=s.value, text=PlainTextObject(text=s.label))


_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}")


_SLACK_ID = re.compile(r"[A-Z0-9]{1,32}")


def slack_id(value: object) -> bool:
    """Whether `value` looks like a Slack user or channel id (C0123ABCD, U0123ABCD)."""
    return isinstance(value, str) and _SLACK_ID.fullmatch(value) is not None


def slack_ts(value: str | None) -> str | None:
    """A message timestamp as Slack writes them (`1700000000.123456`), or None for anything else."""
    return value if value is not None and _TS.fullmatch(value) else None


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
    queues: list[Queue] | None = None,
    queue_id: int | None = None,
) -> View:
    """The escalation form. `queues`: where there are several, a Queue field, preset to `queue_id`."""
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
            *([_queue_field(queues, queue_id)] if queues and len(queues) > 1 else []),
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


def _element(values: Any, block: str) -> dict[str, Any]:
    """What the form sent for one block, or nothing when any part of it has the wrong shape."""
    return dict_at(values, block, VALUE)


def _value(values: Any, block: str) -> str | None:
    """The text, option, user or channel chosen in one block. Anything of another type than
    Slack sends there (a string where an option belongs, a number for a text) reads as empty,
    so the person gets the field's own error instead of a failure."""
    element = _element(values, block)
    if "selected_option" in element:
        return text_at(element, "selected_option", "value")
    for key in ("selected_user", "selected_conversation", "value"):
        if key in element:
            v = element.get(key)
            return v if isinstance(v, str) else None
    return None


def _values(view: dict[str, Any]) -> dict[str, Any]:
    return dict_at(view, "state", "values")


BROKEN_FIELD = "This field didn't come through. Choose or type it again."


def broken_fields(view: dict[str, Any]) -> dict[str, str]:
    """Field errors for the blocks whose answer arrived, but not in the shape Slack sends (an option
    that is a string, a text that is a number): the person re-enters them instead of the form
    quietly taking a default."""
    values = _values(view)
    errors: dict[str, str] = {}
    for block in values:
        element = _element(values, block)
        if "selected_option" in element:
            ok = element["selected_option"] is None or text_at(element, "selected_option", "value") is not None
        else:
            ok = all(
                element[k] is None or isinstance(element[k], str)
                for k in ("selected_user", "selected_conversation", "value")
                if k in element
            )
        if not ok and block in {f.value for f in F}:
            errors[block] = BROKEN_FIELD
    return errors


def _queue_option(q: Queue) -> Option:
    return Option(value=str(q.id), text=PlainTextObject(text=t.cut_plain(q.name, 75)))


def _queue_field(queues: list[Queue], queue_id: int | None) -> InputBlock:
    preset = next((q for q in queues if q.id == queue_id), queues[0])
    return InputBlock(
        block_id=F.QUEUE,
        label="Queue",
        hint="Whose seniors should take it. Typing `/escalate billing: …` picks Billing.",
        element=StaticSelectElement(
            action_id=VALUE, options=[_queue_option(q) for q in queues[:100]], initial_option=_queue_option(preset)
        ),
    )


def read_queue(view: dict[str, Any]) -> int | None:
    """The queue chosen on a form, as an id (None when the form has no Queue field or it is broken)."""
    chosen = _value(_values(view), F.QUEUE)
    return int(chosen) if chosen is not None and chosen.isdigit() and len(chosen) < 10 else None


def read_escalate_form(view: dict[str, Any]) -> dict[str, str | None]:
    values = _values(view)
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


def move_modal(h: Handoff, queues: list[Queue], *, holder: bool) -> View:
    """Move to another queue, with a note; for the holder of a claimed escalation ("Escalate
    further"), also what they tried, shown on the new card as a second "tried"."""
    further = holder and h.status == Status.CLAIMED
    options = [_queue_option(q) for q in queues if q.id != h.queue_id]
    blocks: list[Any] = [
        ContextBlock(elements=[MarkdownTextObject(text="*" + t.fit(h.summary, 1900) + "*")]),
        InputBlock(
            block_id=F.QUEUE,
            label="Move it to",
            element=StaticSelectElement(action_id=VALUE, options=options[:100]),
        ),
        InputBlock(
            block_id=F.NOTE,
            label="Why, for the seniors there",
            hint="Shown at the top of the new card; the requester is told too.",
            element=PlainTextInputElement(action_id=VALUE, multiline=True, max_length=NOTE_MAX),
        ),
    ]
    if further:
        blocks.append(
            InputBlock(
                block_id=F.MOVE_TRIED,
                label="What you tried",
                optional=True,
                element=PlainTextInputElement(action_id=VALUE, multiline=True, max_length=TEXT_MAX),
            )
        )
    return View(
        type="modal",
        callback_id=CallbackId.MOVE,
        title=PlainTextObject(text=t.cut_plain(f"{'Escalate' if further else 'Move'} {h.ref}", 24)),
        submit=PlainTextObject(text="Move"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=MoveMeta(h=h.id, v=h.version).dump(),
        blocks=blocks,
    )


def read_move_form(view: dict[str, Any]) -> tuple[int | None, str | None, str | None]:
    """The queue chosen (its id), the note, and what the holder tried."""
    values = _values(view)
    return read_queue(view), _value(values, F.NOTE), _value(values, F.MOVE_TRIED)


def read_note(view: dict[str, Any]) -> str | None:
    return _value(_values(view), F.NOTE)


def field_errors(errors: dict[str, str]) -> dict[str, str]:
    """Map validation errors (by field name) to the modal's block ids."""
    known = {f.value for f in F}
    return {(k if k in known else F.SUMMARY.value): v for k, v in errors.items()}


def _selected(values: Any, block: str, key: str = "selected_users") -> list[str]:
    """What a multi-select sent (`selected_users`, `selected_conversations`); nothing of another shape."""
    chosen = _element(values, block).get(key)
    return [c for c in chosen if isinstance(c, str)] if isinstance(chosen, list) else []


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


RETENTION_MAX_DAYS = 36500


def config_modal(cfg: WorkspaceConfig, queues_text: str | None = None, *, default_retention: int | None = None) -> View:
    """`/escalate config`: this workspace's channels and seniors (workspace admins only), and, with
    `queues_text`, the queues there are and how to add, change or remove one."""
    esc = _channel_select(cfg.escalation_channel)
    leads = _channel_select(cfg.leads_channel)
    seniors = _people_select(cfg.senior_user_ids, "Anyone may claim")
    lead_users = _people_select(cfg.lead_user_ids, "Post alerts to the leads channel instead")
    group = PlainTextInputElement(action_id=VALUE, max_length=20, placeholder="S0123ABCD")
    if cfg.senior_usergroup:
        group.initial_value = cfg.senior_usergroup
    keep = PlainTextInputElement(
        action_id=VALUE,
        max_length=5,
        placeholder=f"{default_retention} (the installation's)" if default_retention else "Keep it",
    )
    if cfg.retention_days:
        keep.initial_value = str(cfg.retention_days)
    return View(
        type="modal",
        callback_id=CallbackId.CONFIG,
        title=PlainTextObject(text="Escalation settings"),
        submit=PlainTextObject(text="Save"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            *([ContextBlock(elements=[MarkdownTextObject(text=queues_text)])] if queues_text else []),
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
            InputBlock(
                block_id=F.RETENTION_DAYS,
                label="Erase escalations' text after (days)",
                optional=True,
                hint="What people typed is erased this many days after an escalation is closed; the numbers "
                "stay for the reports. Cards already in Slack are not changed. Blank: "
                + (f"{default_retention} days, as the bot is set up." if default_retention else "keep it."),
                element=keep,
            ),
        ],
    )


def read_config_form(view: dict[str, Any], *, whose: str = "the") -> tuple[WorkspaceConfig, dict[str, str]]:
    """The channels and people typed into the settings modal (the workspace's, or a queue's: the
    queue form has the same fields), and field errors (empty when fine)."""
    values = _values(view)
    errors: dict[str, str] = {}
    group = (_value(values, F.SENIOR_GROUP) or "").strip().upper() or None
    if group and not re.fullmatch(r"S[A-Z0-9]{4,19}", group):
        errors[F.SENIOR_GROUP] = "A user group id looks like S0123ABCD (Slack shows it in the group's link)."
    channel = _value(values, F.ESCALATION_CHANNEL)
    if not channel or not slack_id(channel):
        errors[F.ESCALATION_CHANNEL] = f"Pick the channel {whose} cards go to."
    leads_channel = _value(values, F.LEADS_CHANNEL)
    if leads_channel is not None and not slack_id(leads_channel):
        errors[F.LEADS_CHANNEL] = "Pick a channel from the list."
    seniors, leads = _selected(values, F.SENIORS), _selected(values, F.LEADS)
    for block, people in ((F.SENIORS, seniors), (F.LEADS, leads)):
        if len(people) > 100 or not all(slack_id(p) for p in people):
            errors[block] = "Pick up to 100 people from the list."
    keep = (_value(values, F.RETENTION_DAYS) or "").strip()
    retention = int(keep) if keep.isdigit() and 0 < int(keep) <= RETENTION_MAX_DAYS else None
    if keep and retention is None:
        errors[F.RETENTION_DAYS] = f"A number of days, 1 to {RETENTION_MAX_DAYS}, or blank."
    cfg = WorkspaceConfig(
        escalation_channel=channel,
        leads_channel=leads_channel,
        senior_user_ids=seniors,
        senior_usergroup=group,
        lead_user_ids=leads,
        retention_days=retention,
    )
    return cfg, errors

"""`/escalate config queue NAME` and `/escalate config remove NAME`: a queue's settings, and removing
one (asking where its open escalations go), in modals. Workspace admins only."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ContextBlock,
    ConversationMultiSelectElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.slack import text as t
from bot.slack.ids import CallbackId, QueueMeta
from bot.slack.ids import Field_ as F
from bot.slack.modals import (
    VALUE,
    _channel_select,
    _people_select,
    _selected,
    _value,
    _values,
    read_config_form,
    slack_id,
)
from handoff.domain import Queue
from handoff.queues import QUEUE_ALIASES_MAX, QUEUE_NAME_MAX, aliases_problem, clean_aliases, queue_name_problem

NAME_MAX = QUEUE_NAME_MAX


def _text(current: str | None, *, max_length: int, placeholder: str = "") -> PlainTextInputElement:
    el = PlainTextInputElement(action_id=VALUE, max_length=max_length, placeholder=placeholder or None)
    if current:
        el.initial_value = current
    return el


def queue_modal(queue: Queue | None, name: str) -> View:
    """Add a queue (`queue` None) or change one."""
    q = queue or Queue(id=0, workspace_id=0, name=name, is_default=False)
    serves = ConversationMultiSelectElement(
        action_id=VALUE, filter={"include": ["public", "private"], "exclude_bot_users": True}
    )
    if q.serves:
        serves.initial_conversations = list(q.serves)[:100]
    minutes = "Minutes unclaimed (blank: the workspace's setting)"
    return View(
        type="modal",
        callback_id=CallbackId.QUEUE,
        title=PlainTextObject(text=t.cut_plain(f"Queue {q.name}", 24)),
        submit=PlainTextObject(text="Save"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=QueueMeta(q=queue.id if queue else None).dump(),
        blocks=[
            InputBlock(block_id=F.QUEUE_NAME, label="Name", element=_text(q.name, max_length=NAME_MAX)),
            InputBlock(
                block_id=F.ESCALATION_CHANNEL,
                label="Escalation channel",
                hint="Its cards go here. Invite the bot to it.",
                element=_channel_select(q.escalation_channel),
            ),
            InputBlock(
                block_id=F.SENIORS,
                label="Seniors who may claim",
                optional=True,
                element=_people_select(list(q.senior_user_ids), "Anyone may claim"),
            ),
            InputBlock(
                block_id=F.SENIOR_GROUP,
                label="…or a user group of seniors (its id)",
                optional=True,
                element=_text(q.senior_usergroup, max_length=20, placeholder="S0123ABCD"),
            ),
            InputBlock(
                block_id=F.LEADS_CHANNEL,
                label="Its leads channel",
                optional=True,
                hint="Its weekly report and alerts; blank: the workspace's leads channel.",
                element=_channel_select(q.leads_channel),
            ),
            InputBlock(
                block_id=F.LEADS,
                label="Leads to DM about unclaimed escalations",
                optional=True,
                element=_people_select(list(q.lead_user_ids), "Post alerts to the leads channel instead"),
            ),
            InputBlock(
                block_id=F.ALIASES,
                label="Other names, comma-separated",
                optional=True,
                hint="`/escalate bill: …` picks the queue called or aliased bill.",
                element=_text(", ".join(q.aliases), max_length=QUEUE_ALIASES_MAX, placeholder="bill, payments"),
            ),
            InputBlock(
                block_id=F.SERVES,
                label="Channels whose escalations it takes",
                optional=True,
                hint="/escalate run there presets this queue.",
                element=serves,
            ),
            InputBlock(
                block_id=F.REMINDER_MINUTES,
                label="Remind its seniors after",
                optional=True,
                element=_text(str(q.reminder_minutes or ""), max_length=5, placeholder=minutes),
            ),
            InputBlock(
                block_id=F.LEAD_ALERT_MINUTES,
                label="Alert its leads after",
                optional=True,
                element=_text(str(q.lead_alert_minutes or ""), max_length=5, placeholder=minutes),
            ),
        ],
    )


def _minutes(raw: str | None) -> int | str | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 10_080 else "A number of minutes, 1 to 10080 (a week)."


def read_queue_form(view: dict[str, Any], queue_id: int | None) -> tuple[Queue, dict[str, str]]:
    """The queue as typed into the form, and field errors (empty when fine)."""
    values = _values(view)
    cfg, errors = read_config_form(view, whose="its")  # the channels and people, as the workspace's form
    name = " ".join((_value(values, F.QUEUE_NAME) or "").split())
    name_problem = queue_name_problem(name)
    if name_problem:
        errors[F.QUEUE_NAME] = name_problem
    served = _selected(values, F.SERVES, "selected_conversations")
    if len(served) > 100 or not all(slack_id(c) for c in served):
        errors[F.SERVES] = "Pick up to 100 channels from the list."
    aliases = clean_aliases(_value(values, F.ALIASES) or "")
    problem = aliases_problem(aliases)
    if problem:
        errors[F.ALIASES] = problem
    reminder, alert = _minutes(_value(values, F.REMINDER_MINUTES)), _minutes(_value(values, F.LEAD_ALERT_MINUTES))
    for block, got in ((F.REMINDER_MINUTES, reminder), (F.LEAD_ALERT_MINUTES, alert)):
        if isinstance(got, str):
            errors[block] = got
    queue = Queue(
        id=queue_id or 0,
        workspace_id=0,
        name=name,
        is_default=False,
        aliases=aliases,
        escalation_channel=cfg.escalation_channel,
        leads_channel=cfg.leads_channel,
        senior_user_ids=tuple(cfg.senior_user_ids),
        senior_usergroup=cfg.senior_usergroup,
        lead_user_ids=tuple(cfg.lead_user_ids),
        reminder_minutes=reminder if isinstance(reminder, int) else None,
        lead_alert_minutes=alert if isinstance(alert, int) else None,
        serves=tuple(served),
    )
    return queue, errors


def remove_modal(queue: Queue, others: list[Queue], open_count: int) -> View:
    """Removing a queue: where its open escalations go."""
    options = [Option(value=str(q.id), text=PlainTextObject(text=t.cut_plain(q.name, 75))) for q in others][:100]
    said = (
        f"*{t.fit(queue.name, 80)}* has {open_count} open or claimed escalation{'s' if open_count != 1 else ''}: "
        "they move to the queue you choose (each with a new card there; the holders are released)."
        if open_count
        else f"*{t.fit(queue.name, 80)}* has no open escalations."
    )
    return View(
        type="modal",
        callback_id=CallbackId.QUEUE_REMOVE,
        title=PlainTextObject(text="Remove a queue"),
        submit=PlainTextObject(text="Remove"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=QueueMeta(q=queue.id).dump(),
        blocks=[
            ContextBlock(elements=[MarkdownTextObject(text=said)]),
            InputBlock(
                block_id=F.QUEUE,
                label="Move its open escalations to",
                element=StaticSelectElement(action_id=VALUE, options=options, initial_option=options[0]),
            ),
        ],
    )


def queues_summary(queues: list[Queue]) -> str:
    """For the settings modal: the queues there are, and how to add, change or remove one."""
    lines = []
    for q in queues[:20]:
        where = (
            f"<#{q.escalation_channel}>"
            if q.escalation_channel
            else ("the channel above" if q.is_default else "no channel")
        )
        lines.append(f"• *{t.fit(q.name, 80)}*{' (default: the settings below)' if q.is_default else ''} → {where}")
    return (
        "*Queues*\n"
        + "\n".join(lines)
        + "\n`/escalate config queue NAME` adds or changes one; `/escalate config remove NAME` removes one."
    )

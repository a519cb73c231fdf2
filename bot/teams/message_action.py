"""Escalate a message in Teams: the app's message action (a message extension command with
`context: ["message"]` and `fetchTask`). Teams asks for the dialog (`composeExtension/fetchTask`):
the escalation form, prefilled from the message; the form's submission comes back as
`composeExtension/submitAction` and is stored like any escalation. The card shows the message as its
first "tried" entry with its link; its replies are not read (that needs Graph permissions beyond a
bot), and the card says the thread is linked."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

from microsoft_agents.activity import Activity, ActivityTypes, InvokeResponse
from microsoft_agents.hosting.core import TurnContext

from bot.teams import cards
from bot.teams.package import MESSAGE_ACTION
from bot.teams.replies import TRY_AGAIN, Bot, reference_of, who
from handoff.validation import TEXT_MAX, FormErrors, validate_draft
from storage.db import StorageUnavailable

COMMAND_ID = MESSAGE_ACTION  # the command's id in the app's manifest
TEAMS_LINK = re.compile(r"https://teams\.microsoft\.com/l/message/[^\s\"'<>]{1,1500}")
_TAG = re.compile(r"<[^>]*>")


def message_of(value: dict[str, Any]) -> dict[str, str]:
    """The escalated message as Teams sends it in `messagePayload`: its text (HTML stripped), author
    and link (only a Teams message link; anything else is dropped)."""
    payload = value.get("messagePayload") if isinstance(value.get("messagePayload"), dict) else {}
    body = payload.get("body") if isinstance(payload.get("body"), dict) else {}
    content = str(body.get("content") or "")
    if str(body.get("contentType") or "").lower() == "html":
        content = html.unescape(_TAG.sub(" ", content.replace("<br>", "\n").replace("</p>", "\n")))
    sender = payload.get("from") if isinstance(payload.get("from"), dict) else {}
    user = sender.get("user") if isinstance(sender.get("user"), dict) else {}
    link = str(payload.get("linkToMessage") or "")
    return {
        "text": cards.cut("\n".join(" ".join(line.split()) for line in content.splitlines()).strip(), TEXT_MAX),
        "author": cards.cut(str(user.get("displayName") or "someone"), 100),
        "link": link if TEAMS_LINK.fullmatch(link) else "",
    }


async def answer(context: TurnContext, body: dict[str, Any]) -> None:
    await context.send_activity(
        Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200, body=body))
    )


def dialog(form: dict[str, Any]) -> dict[str, Any]:
    return {
        "task": {
            "type": "continue",
            "value": {
                "title": "Escalate this message",
                "height": "large",
                "width": "medium",
                "card": cards.attachment(form),
            },
        }
    }


async def fetch_task(bot: Bot, context: TurnContext) -> None:
    """The dialog: the escalation form, its summary and details from the message."""
    value = context.activity.value if isinstance(context.activity.value, dict) else {}
    if value.get("commandId") != COMMAND_ID:
        await answer(context, {"task": {"type": "message", "value": "I don't know that command."}})
        return
    message = message_of(value)
    me = who(context)
    first = message["text"].splitlines()[0] if message["text"] else ""
    values = {"summary": cards.cut(first, 150), "details": message["text"] if len(message["text"]) > len(first) else ""}
    try:
        ws = await bot.service.workspace_id("teams", me.tenant)
        queues = await bot.service.queues(ws)
        seniors = await bot._senior_choices(ws)
    except StorageUnavailable:
        await answer(context, {"task": {"type": "message", "value": TRY_AGAIN}})
        return
    form = cards.form_card(values, seniors=seniors, queues=queues, from_message=True, form_id=uuid.uuid4().hex)
    await answer(context, dialog(form))


async def submit_action(bot: Bot, context: TurnContext) -> None:
    """The dialog's form, submitted: stored like any escalation, the message as its source."""
    value = context.activity.value if isinstance(context.activity.value, dict) else {}
    data = value.get("data") if isinstance(value.get("data"), dict) else {}
    message = message_of(value)
    me = who(context)
    form = data.get("form")
    form_id = form if isinstance(form, str) and re.fullmatch(r"[0-9a-f]{32}", form) else None
    source = {
        "platform": "teams",
        "permalink": message["link"],
        "author": message["author"],
        "text": message["text"],
        "thread": "linked",
    }
    fields = {k: data.get(k) for k in ("summary", "severity", "customer", "tried", "details", "requested_senior")}
    fields = {k: (v if isinstance(v, str) else None) for k, v in fields.items()}
    try:
        ws = await bot.service.workspace_id("teams", me.tenant)
        queues = await bot.service.queues(ws)
        chosen = data.get("queue")
        queue = next((q for q in queues if isinstance(chosen, str) and str(q.id) == chosen), None)
        try:
            draft = validate_draft(fields, requester_id=me.user_id, source=source)
            if len(queues) > 1 and queue is None:
                raise FormErrors({"queue": "Choose the queue it goes to."})
        except FormErrors as exc:
            shown = {**fields, "queue": queue.id if queue else None}
            form = cards.form_card(
                shown, exc.errors, await bot._senior_choices(ws), queues, from_message=True, form_id=form_id
            )
            await answer(context, dialog(form))
            return
        await bot._remember_chat(context, ws, me)
        # One dialog, one escalation: pressing Escalate again on it stores nothing new.
        key = f"teams-dialog:{form_id}" if form_id else f"teams-message-action:{context.activity.id}"
        result = await bot.service.escalate(ws, me.user_id, draft, key=key, queue_id=queue.id if queue else None)
        await bot.service.remember_conversation(ws, f"origin:{result.handoff.id}", reference_of(context))
    except StorageUnavailable:
        await answer(context, {"task": {"type": "message", "value": TRY_AGAIN}})
        return
    h = result.handoff
    await answer(
        context,
        {
            "task": {
                "type": "message",
                "value": f"Escalated as {h.ref}. I'll tell you in our chat when a senior picks it up.",
            }
        },
    )

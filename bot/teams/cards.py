"""Adaptive Cards (schema 1.5) for Teams: pure functions of a handoff.

Typed text only ever goes into TextRun elements of RichTextBlocks, which Teams shows as
written: no markdown, no mentions, no links. It is cut to sensible lengths with a visible …
"""

from __future__ import annotations

from typing import Any

from bot.phrases import after_phrase
from handoff.domain import Handoff, Queue, Severity, Status
from handoff.validation import CUSTOMER_MAX, SUMMARY_MAX, TEXT_MAX

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ELLIPSIS = "…"
SEVERITY_DOT = {Severity.P1: "🔴", Severity.P2: "🟠", Severity.P3: "🟡", Severity.P4: "⚪"}
SHOWN_MAX = 1500  # per section on the card; the full text stays in the database


def cut(text: str | None, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def run(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextRun", "text": text, **style}


def rich(*runs: dict[str, Any], **block: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": list(runs), **block}


def card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None, *, fallback: str) -> dict[str, Any]:
    """A 1.5 card; `fallback` is what a client that cannot render it shows instead (`fallbackText`)."""
    out: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": "1.5",
        "fallbackText": cut(fallback, 500),
        "body": body,
    }
    if actions:
        out["actions"] = actions
    return out


def attachment(content: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": CARD_TYPE, "content": content}


def _section(title: str, text: str, empty: str) -> list[dict[str, Any]]:
    return [
        {"type": "TextBlock", "text": title, "weight": "Bolder", "spacing": "Medium", "wrap": True},
        rich(run(cut(text, SHOWN_MAX) if text else empty, isSubtle=not text), spacing="Small"),
    ]


def _headline(h: Handoff) -> list[dict[str, Any]]:
    """Severity, number and summary: the top of every card about an escalation."""
    return [
        {
            "type": "TextBlock",
            "text": f"{SEVERITY_DOT[h.severity]} {h.severity.label} · {h.ref}",
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        rich(run(cut(h.summary, SUMMARY_MAX), weight="Bolder", size="Medium")),
    ]


def escalation_card(
    h: Handoff, names: dict[str, str], queues: list[Queue] | None = None, *, viewer: str | None = None
) -> dict[str, Any]:
    """The card. `queues`: the workspace's, where it has several: the card names the one it is in and
    offers to move it to another. A claimed card is drawn per viewer (Universal Actions' `refresh`):
    everyone sees who holds it, with no buttons that can only fail; the holder's client refreshes it
    (`viewer` = the holder) to the one with Resolve and Release."""

    def name(user: str | None) -> str:
        return cut(names.get(user or "", "someone"), 100)

    several = queues is not None and len(queues) > 1
    value: dict[str, Any] = {"h": h.id, "v": h.version}
    if several:
        value["q"] = h.queue_id
    body: list[dict[str, Any]] = [
        *_headline(h),
        rich(
            run("Escalated by ", isSubtle=True),
            run(name(h.requester_id), isSubtle=True, weight="Bolder"),
            spacing="None",
        ),
    ]
    if several:
        here = next((q.name for q in queues or [] if q.id == h.queue_id), "")
        body.append(rich(run("Queue: ", isSubtle=True), run(cut(here, 80), weight="Bolder"), spacing="None"))
    if h.handovers:
        last = h.handovers[-1]
        said = [run(": " + cut(str(last.get("note") or ""), SHOWN_MAX))] if last.get("note") else []
        body.append(
            rich(
                run("↩ Moved here from "),
                run(cut(str(last.get("from") or ""), 80), weight="Bolder"),
                run(" by "),
                run(name(str(last.get("by") or "")), weight="Bolder"),
                *said,
                spacing="Medium",
            )
        )
        if last.get("tried"):
            body += _section(f"What {name(str(last.get('by') or ''))} tried", str(last.get("tried")), "")
    if h.requested_senior_id and h.status == Status.OPEN:
        body.append(rich(run("Asked for ", isSubtle=True), run(name(h.requested_senior_id), weight="Bolder")))
    body += _section("Problem", h.details, "No details given beyond the summary.")
    source = h.source or {}
    if source.get("platform") == "teams":
        said = rich(
            run(cut(str(source.get("author") or "someone"), 100) + ": ", weight="Bolder"),
            run(cut(str(source.get("text") or ""), SHOWN_MAX)),
            spacing="Small",
        )
        link = str(source.get("permalink") or "")
        body += [
            {
                "type": "TextBlock",
                "text": "Escalated from a message",
                "weight": "Bolder",
                "spacing": "Medium",
                "wrap": True,
            },
            said,
            rich(
                run("The thread is linked, not copied: ", isSubtle=True),
                run("open the message", selectAction={"type": "Action.OpenUrl", "url": link}),
                spacing="None",
            )
            if link
            else rich(run("Its replies are not copied.", isSubtle=True), spacing="None"),
        ]
    if not (source and not h.tried):
        body += _section("What was tried", h.tried, "Nothing listed.")
    body += _section("Customer / environment", h.customer, "Not given.")
    if h.similar:
        body.append(
            {
                "type": "TextBlock",
                "text": "Similar resolved escalations",
                "weight": "Bolder",
                "spacing": "Medium",
                "wrap": True,
            }
        )
        for s in h.similar[:3]:
            body.append(
                rich(
                    run(f"ESC-{s.get('number')} ", weight="Bolder"),
                    run(cut(str(s.get("summary") or ""), 150)),
                    run("\nFixed: ", isSubtle=True),
                    run(cut(" ".join(str(s.get("resolution") or "").split()), 400)),
                    run(" · resolved by ", isSubtle=True),
                    run(name(str(s.get("resolved_by") or "")), isSubtle=True),
                    spacing="Small",
                )
            )
    actions: list[dict[str, Any]] = []
    if h.status == Status.OPEN:
        body.append(rich(run("⏳ Open · waiting for a senior to claim it"), separator=True, spacing="Medium"))
        actions.append(
            {"type": "Action.Execute", "title": "Claim", "verb": "claim", "data": value, "style": "positive"}
        )
    elif h.status == Status.CLAIMED and h.claimed_at is not None:
        body.append(
            rich(
                run("✋ Claimed by "),
                run(name(h.claimed_by), weight="Bolder"),
                run(f" · {after_phrase(h.created_at, h.claimed_at)} after escalation"),
                separator=True,
                spacing="Medium",
            )
        )
    holder_view = h.status == Status.CLAIMED and viewer is not None and viewer == h.claimed_by
    if holder_view:
        body.append(
            {
                "type": "Input.Text",
                "id": "note",
                "label": "What fixed it? (needed to resolve)",
                "isMultiline": True,
                "maxLength": TEXT_MAX,
                "placeholder": "The fix, for the requester and the next person",
            }
        )
        actions += [
            {"type": "Action.Execute", "title": "Resolve", "verb": "resolve", "data": value, "style": "positive"},
            {"type": "Action.Execute", "title": "Release", "verb": "release", "data": value},
        ]
    if h.status == Status.CANCELLED:
        body.append(
            rich(
                run("🚫 Cancelled"),
                *([run(" by "), run(name(h.cancelled_by), weight="Bolder")] if h.cancelled_by else []),
                *([run(f" · {after_phrase(h.created_at, h.cancelled_at)} after escalation")] if h.cancelled_at else []),
                separator=True,
                spacing="Medium",
            )
        )
    if h.status == Status.RESOLVED and h.resolved_at is not None:
        body.append(
            rich(
                run("✅ Resolved by "),
                run(name(h.resolved_by), weight="Bolder"),
                run(f" · {after_phrase(h.created_at, h.resolved_at)} after escalation"),
                separator=True,
                spacing="Medium",
            )
        )
        body += _section("Resolution", h.resolution or "", "No note.")
    if several and (h.status == Status.OPEN or holder_view):
        body += [
            {
                "type": "Input.ChoiceSet",
                "id": "move_to",
                "label": "Move to another queue",
                "style": "compact",
                "placeholder": "Choose a queue",
                "choices": [
                    {"title": cut(q.name, 80), "value": str(q.id)} for q in (queues or []) if q.id != h.queue_id
                ][:100],
                "separator": True,
            },
            {
                "type": "Input.Text",
                "id": "move_note",
                "label": "Why, for the seniors there",
                "maxLength": TEXT_MAX,
            },
        ]
        if h.status == Status.CLAIMED:  # the holder escalating it further says what they tried
            body.append(
                {
                    "type": "Input.Text",
                    "id": "move_tried",
                    "label": "What you tried (when you escalate it further)",
                    "isMultiline": True,
                    "maxLength": TEXT_MAX,
                }
            )
        actions.append({"type": "Action.Execute", "title": "Move", "verb": "move", "data": value})
    out = card(body, actions, fallback=card_summary(h))
    if h.status == Status.CLAIMED and h.claimed_by:
        # The holder's client asks for their own view (verb `refresh`); everyone else keeps this one.
        out["refresh"] = {
            "action": {"type": "Action.Execute", "title": "Refresh", "verb": "refresh", "data": value},
            "userIds": [h.claimed_by],
        }
    return out


def moved_card(h: Handoff, names: dict[str, str], moved: dict[str, Any]) -> dict[str, Any]:
    """The card an escalation had in the queue it left: what it was, where it went, no actions."""
    who = cut(names.get(str(moved.get("actor") or ""), "someone"), 100)
    said = [run(": " + cut(str(moved.get("note") or ""), SHOWN_MAX))] if moved.get("note") else []
    return card(
        [
            *_headline(h),
            rich(
                run("➡ Moved to "),
                run(cut(str(moved.get("to") or ""), 80), weight="Bolder"),
                run(" by "),
                run(who, weight="Bolder"),
                *said,
                separator=True,
                spacing="Medium",
            ),
        ],
        fallback=f"{h.ref} moved to the {cut(str(moved.get('to') or ''), 80)} queue: {cut(h.summary, 200)}",
    )


def card_summary(h: Handoff) -> str:
    """The notification / fallback text."""
    state = {Status.OPEN: "open", Status.CLAIMED: "claimed", Status.RESOLVED: "resolved"}.get(h.status, str(h.status))
    return f"{h.severity.value} {h.ref} ({state}): {cut(h.summary, 200)}"


# ---- the escalation form -----------------------------------------------------


def form_card(
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    seniors: list[tuple[str, str]] | None = None,
    queues: list[Queue] | None = None,
    *,
    from_message: bool = False,
    form_id: str | None = None,
) -> dict[str, Any]:
    """The escalation form. `seniors` ((id, name) of who may claim) become a plain choice list for
    "ask a specific senior": it renders on every Teams client, where the People Picker (Adaptive
    Cards 1.6, desktop and web only) would not. `from_message`: in the dialog of "Escalate this
    message", where "what was tried" may stay empty (the message says it), and `form_id` makes its
    submission count once however often it is pressed."""
    v = values or {}
    errors = errors or {}
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": "Escalate to a senior", "weight": "Bolder", "size": "Medium", "wrap": True}
    ]
    if from_message:
        body.append(
            rich(
                run("The message goes on the card with its link; its replies are linked, not copied.", isSubtle=True),
                spacing="None",
            )
        )
    if errors:
        body.append(rich(run("Please fix: " + " ".join(errors.values()), color="Attention"), spacing="Small"))

    def text_input(
        key: str, label: str, limit: int, *, multiline: bool = False, required: bool = False, placeholder: str = ""
    ) -> None:
        el: dict[str, Any] = {
            "type": "Input.Text",
            "id": key,
            "label": label,
            "maxLength": limit,
            "isMultiline": multiline,
            "isRequired": required,
            "placeholder": placeholder,
            "value": cut(str(v.get(key) or ""), limit),
        }
        if required:
            el["errorMessage"] = "Required"
        if key in errors:
            body.append(rich(run(errors[key], color="Attention"), spacing="Small"))
        body.append(el)

    text_input(
        "summary",
        "What is wrong? (one line)",
        SUMMARY_MAX,
        required=True,
        placeholder="Customer can't log in after SSO change",
    )
    if queues and len(queues) > 1:
        if "queue" in errors:
            body.append(rich(run(errors["queue"], color="Attention"), spacing="Small"))
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": "queue",
                "label": "Queue",
                "value": str(v.get("queue") or queues[0].id),
                "choices": [{"title": cut(q.name, 80), "value": str(q.id)} for q in queues[:100]],
            }
        )
    body.append(
        {
            "type": "Input.ChoiceSet",
            "id": "severity",
            "label": "Severity",
            "value": str(v.get("severity") or "P3"),
            "choices": [{"title": s.label, "value": s.value} for s in Severity],
        }
    )
    text_input("customer", "Customer / ticket", CUSTOMER_MAX, placeholder="Acme Corp · ticket #4821")
    text_input(
        "tried",
        "What have you tried? (optional: the message may say it)" if from_message else "What have you tried?",
        TEXT_MAX,
        multiline=True,
        required=not from_message,
    )
    text_input("details", "Details / errors", TEXT_MAX, multiline=True)
    if seniors:
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": "requested_senior",
                "label": "Ask a specific senior (optional)",
                "style": "compact",
                "isMultiSelect": False,
                "placeholder": "Anyone who is free",
                "value": str(v.get("requested_senior") or ""),
                "choices": [{"title": cut(name, 100), "value": uid} for uid, name in seniors[:100]],
            }
        )
    data: dict[str, Any] = {"verb": "escalate"}
    if form_id:
        data["form"] = form_id
    return card(
        body,
        [{"type": "Action.Submit", "title": "Escalate", "data": data}],
        fallback="The escalation form: open this message in Teams on desktop, web or mobile to fill it in.",
    )


def done_card(text: str) -> dict[str, Any]:
    return card([rich(run(text))], fallback=text)

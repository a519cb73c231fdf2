"""What the bot says to people in Slack, as pure functions of the handoff."""

from __future__ import annotations

from datetime import datetime

from bot.phrases import after_phrase, ago_phrase
from bot.slack import text as t
from handoff.domain import Conflict, Handoff, Status

HELP = "\n".join(
    [
        "*/escalate* — ask a senior for help with structured context.",
        "• `/escalate` opens the form.",
        "• `/escalate customer can't log in after SSO change` opens it with the summary filled in.",
        "• `/escalate billing: customer can't pay` picks the Billing queue (where there are several).",
        "• `/escalate mine` lists your escalations that are still open or being worked on; "
        "`/escalate cancel ESC-12` withdraws one of yours.",
        "• `/escalate stats` shows this week so far (for leads); `/escalate stats billing` one queue's.",
        "• `/escalate config` sets the escalation channel, leads channel and seniors, and lists the queues; "
        "`/escalate config queue NAME` adds or changes a queue, `/escalate config remove NAME` removes one "
        "(workspace admins).",
        "• `/escalate dashboard` sends you a private link to the leads' page (figures for any period, queue and "
        "senior, a CSV); `/escalate baseline 25` records that a handoff without the bot took 25 minutes (leads).",
        "• `/escalate help` shows this.",
        "• On any message: *More actions → Escalate this message* escalates it with its thread.",
        "The card goes to the escalation channel; you'll get a DM when a senior picks it up and when it's resolved. "
        "The bot's Home tab shows the open queue, your escalations and your claims.",
    ]
)

NOT_CONFIGURED = (
    "This workspace has no escalation channel yet, so there is nowhere to post the card. "
    "A workspace admin can pick one with `/escalate config`."
)
ADMINS_ONLY = "Only workspace admins and owners can change the escalation settings."


def cannot_check_admin(error: str) -> str:
    if error == "missing_scope":
        return (
            "I can't tell whether you are a workspace admin: the app lacks the users:read scope. "
            "Reinstall it from manifest.yml, then run `/escalate config` again."
        )
    return f"Slack wouldn't tell me whether you are a workspace admin ({t.escape(error)}). Please try again."


STATS_FOR_LEADS = "`/escalate stats` is for the leads of this workspace (or of that queue)."
CONFIG_SAVED = "Saved. Cards now go to {channel}."


def mine(handoffs: list[Handoff], queue_names: dict[int, str] | None = None) -> str:
    """`/escalate mine`; with `queue_names` (a workspace with several queues) each line names its queue."""
    if not handoffs:
        return "You have no open escalations. Run `/escalate` when you need a senior."
    lines = [f"*Your open escalations* ({len(handoffs)})"]
    for h in handoffs:
        state = f"claimed by {t.user(h.claimed_by)}" if h.status == Status.CLAIMED else "waiting for a senior"
        queue = f" · {t.fit(queue_names.get(h.queue_id or 0, ''), 60)}" if queue_names else ""
        lines.append(f"• {t.link(h.card_url, h.ref)} {t.fit(h.summary, 200)} · {h.severity.value}{queue} · {state}")
    return "\n".join(lines)


def _open_card(h: Handoff) -> str:
    return f" ({t.link(h.card_url, 'open the card')})" if h.card_url else ""


def created_dm(h: Handoff) -> str:
    where = f" in {t.channel(h.card_channel)}" if h.card_channel else ""
    return (
        f"Your escalation *{h.ref}* is posted{where}{_open_card(h)}: _{t.fit(h.summary, 300)}_\n"
        "I'll tell you here as soon as a senior picks it up."
    )


def claimed_dm(h: Handoff, actor: str) -> str:
    return f"{t.user(actor)} picked up {h.ref}. They'll follow up in the card's thread{_open_card(h)}."


def released_dm(h: Handoff, actor: str) -> str:
    return f"{t.user(actor)} released {h.ref}; it is open again and waiting for a senior{_open_card(h)}."


def resolved_dm(h: Handoff, actor: str) -> str:
    note = t.fit(h.resolution or "", 2500)
    return f"{h.ref} was resolved by {t.user(actor)}{_open_card(h)}.\n*Resolution:*\n{note}"


def requester_message(h: Handoff, what: str, actor: str) -> str:
    if what == "created":
        return created_dm(h)
    if what == "claimed":
        return claimed_dm(h, actor)
    if what == "released":
        return released_dm(h, actor)
    if what == "resolved":
        return resolved_dm(h, actor)
    if what == "cancelled":
        return f"You cancelled {h.ref}{_open_card(h)}; nobody needs to pick it up now."
    raise ValueError(f"no requester message for {what!r}")


def moved_dm(h: Handoff, actor: str, to: str, note: str) -> str:
    said = f": {t.fit(' '.join(note.split()), 1000)}" if note.strip() else "."
    there = f"Its seniors there will pick it up{_open_card(h)}."
    return f"{t.user(actor)} moved your escalation {h.ref} to *{t.fit(to, 80)}*{said} {there}"


MOVE_REFUSED = "Only the seniors and leads of this escalation's queue, or whoever holds it, can move it."


def moved_away(h: Handoff, to: str) -> str:
    """A click on the card of a queue the escalation has left."""
    return f"{h.ref} has moved to *{t.fit(to, 80)}*{_open_card(h)}; that card is the one to use now."


def thread_note(h: Handoff, what: str, actor: str) -> str:
    if what == "claimed":
        return f"{t.user(actor)} claimed {h.ref}."
    if what == "released":
        return f"{t.user(actor)} released {h.ref}; it is open again."
    if what == "resolved":
        return f"{t.user(actor)} resolved {h.ref}:\n{t.fit(h.resolution or '', 2500)}"
    if what == "cancelled":
        return f"{t.user(actor)} cancelled {h.ref}; there is nothing more to do here."
    raise ValueError(f"no thread note for {what!r}")


CANCEL_USAGE = "Say which: `/escalate cancel ESC-12` (only the person who escalated it can)."


def cancelled_reply(outcome_ref: str) -> str:
    return f"{outcome_ref} is cancelled; its card says so and whoever held it is told in its thread."


# ---- ephemeral replies to a click -----------------------------------------


def you_won(h: Handoff) -> str:
    return f"You claimed {h.ref}. Reply in the card's thread so {t.user(h.requester_id)} sees your first step."


def conflict(c: Conflict, now: datetime) -> str:
    return f"Already claimed by {t.user(c.winner)} {ago_phrase(c.claimed_at, now)}."


ALREADY_YOURS = "You already have this one."
OWN = "You can't claim your own escalation; a senior will pick it up."
NOT_FOUND = "I can't find that escalation in this workspace."
TRY_AGAIN = "I couldn't reach my database just now, so nothing changed. Please try again in a moment."
BROKEN_BUTTON = "That button doesn't carry a valid escalation; nothing changed."
SOMETHING_WRONG = "Something went wrong on my side and nothing changed. Please try again."


def who_may_claim(senior_ids: list[str], usergroup: str | None) -> str:
    who: list[str] = [t.user(u) for u in senior_ids]
    if usergroup:
        who.append(f"members of <!subteam^{usergroup}>")
    listed = ", ".join(who[:-1]) + (" or " if len(who) > 1 else "") + who[-1] if who else "seniors"
    return f"Only seniors can claim escalations here: {listed}."


def closed(h: Handoff) -> str:
    if h.cancelled_by:
        return f"{h.ref} was cancelled by {t.user(h.cancelled_by)}."
    if h.resolved_by:
        return f"{h.ref} is already resolved (by {t.user(h.resolved_by)})."
    return f"{h.ref} is closed."


def not_holder(h: Handoff) -> str:
    if h.claimed_by:
        return f"{t.user(h.claimed_by)} holds {h.ref} now, so only they can do that. Nothing changed."
    return f"{h.ref} isn't claimed by you any more (it is open again). Nothing changed."


def released(h: Handoff) -> str:
    return f"You released {h.ref}; it is open for other seniors again."


def resolved(h: Handoff) -> str:
    return f"You resolved {h.ref}. {t.user(h.requester_id)} has been sent your note."


def open_form_failed() -> str:
    return "I couldn't open the escalation form (Slack said no in time). Please run `/escalate` again."


# ---- reminders -------------------------------------------------------------


def senior_ping(senior_ids: list[str], usergroup: str | None) -> str:
    if usergroup:
        return f"<!subteam^{usergroup}>"
    if senior_ids:
        return " ".join(t.user(u) for u in senior_ids[:30])
    return "<!here>"


def reminder(h: Handoff, ping: str, now: datetime) -> str:
    waited = after_phrase(h.created_at, now)
    return f"{ping} {h.ref} ({h.severity.label}) has waited {waited} with nobody on it. Can someone claim it?"


def lead_alert(h: Handoff, now: datetime) -> str:
    waited = after_phrase(h.created_at, now)
    where = f" in {t.channel(h.card_channel)}" if h.card_channel else ""
    return (
        f":warning: {h.ref} ({h.severity.label}) has been open {waited}{where} and nobody has claimed it: "
        f"_{t.fit(h.summary, 300)}_{_open_card(h)}"
    )


NOTICES = {
    "chart_scope": (
        ":warning: The weekly escalation report is posted without its chart: this workspace installed "
        "Escalation Bot before it asked for the `files:write` scope. A workspace admin can reinstall the app "
        "(from manifest.yml, or through the install page) to get the chart from next week on."
    ),
}

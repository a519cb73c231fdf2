"""Slack listeners, one module per kind of request; each has `register(app, deps)`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.deps import SlackDeps
from bot.slack.listeners import actions, commands, events, queues, shortcuts, views


def register_all(app: AsyncApp, deps: SlackDeps) -> None:
    commands.register(app, deps)
    shortcuts.register(app, deps)
    views.register(app, deps)
    queues.register(app, deps)
    actions.register(app, deps)
    events.register(app, deps)
    events.register_last(app, deps)  # the catch-all for events: after every other listener

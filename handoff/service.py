"""The engine: escalate, claim, release, resolve, record what the platforms did.

One service, put together from its parts, each in a module of its own:
`core` (what they share), `intake` (taking escalations in), `claims` (claim, release, resolve),
`queues` (routing, keeping queues, moves), `followups` (first actions, reminders, reports),
`views` (App Home, settings), `watch` (what the metrics read), `retention` (erasing and pruning) and
`leads` (the leads' page: sign-in links, sessions, measured baselines).
"""

from __future__ import annotations

from handoff.claims import Claims
from handoff.core import (
    SIMILAR_BUDGET_SECONDS,
    DuplicateKey,
    HomeView,
    home_refresh_row,
    utcnow,
)
from handoff.followups import FollowUps
from handoff.intake import Intake
from handoff.leads import LeadsPage
from handoff.queues import Queues
from handoff.retention import Retention
from handoff.views import Views
from handoff.watch import Watch

__all__ = ["SIMILAR_BUDGET_SECONDS", "DuplicateKey", "HandoffService", "HomeView", "home_refresh_row", "utcnow"]


class HandoffService(Intake, Claims, Queues, FollowUps, Views, Watch, Retention, LeadsPage):
    """The whole engine, as the bot uses it."""

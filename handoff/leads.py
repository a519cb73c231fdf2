"""The leads' page, platform-free: one-time sign-in links and sessions, measured manual handoffs,
and the figures of any period (the weekly report's, for any dates).

Who is a lead is each platform's to say (bot/dashboard/access.py); here a link is made for whoever
the caller vouches for, works once and for LINK_MINUTES, and starts a session of SESSION_HOURS.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from handoff.core import ServiceCore
from storage import dashboard as store

LINK_MINUTES = 10
SESSION_HOURS = 8
BASELINE_MAX_MINUTES = 24 * 60


@dataclass(frozen=True)
class Session:
    workspace_id: int
    user_id: str
    csrf: str
    expires_at: datetime


class LeadsPage(ServiceCore):
    async def sign_in_link(self, workspace_id: int, user_id: str) -> str:
        """A new one-time token for `user_id` (already known to be a lead of `workspace_id`)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        async with self.db.write() as conn:
            await store.add_link(conn, token, workspace_id, user_id, now, now + timedelta(minutes=LINK_MINUTES))
        return token

    async def sign_in(self, token: str) -> tuple[str, Session] | None:
        """Use a link (the first time only, within its minutes) and start a session: the session's
        secret (for the cookie) and the session. None for a link used, expired or never made."""
        now = self.clock()
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        expires = now + timedelta(hours=SESSION_HOURS)
        async with self.db.write() as conn:
            found = await store.use_link(conn, token, now)
            if found is None:
                return None
            ws, user = found
            await store.add_session(conn, session_id, csrf, ws, user, now, expires)
        return session_id, Session(ws, user, csrf, expires)

    async def signed_in(self, session_id: str) -> Session | None:
        async with self.db.read() as conn:
            row = await store.session(conn, session_id, self.clock())
        if row is None:
            return None
        return Session(int(row["workspace_id"]), str(row["user_id"]), str(row["csrf"]), row["expires_at"])

    async def sign_out(self, session_id: str) -> None:
        async with self.db.write() as conn:
            await store.end_session(conn, session_id)

    async def record_baseline(self, workspace_id: int, user_id: str, minutes: float) -> int:
        """A lead's measurement of a handoff without the bot; returns how many there are now."""
        async with self.db.write() as conn:
            await store.add_measurement(conn, workspace_id, user_id, minutes, self.clock())
            return len(await store.measurements(conn, workspace_id))

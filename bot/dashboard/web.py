"""The leads' page over HTTP, under /dashboard.

Nothing under /dashboard is served without a session except the sign-in link: a request without one
gets 401 and a page saying how to sign in from Slack or Teams. A session is made by a one-time link
and kept in an HttpOnly cookie (Secure over https, SameSite=Lax, eight hours); it sees its own
workspace alone, and its lead's role is asked of the platform again at every request. Every request
that changes something (recording a baseline, signing out) carries the session's CSRF token.
"""

from __future__ import annotations

import csv
import hmac
import io
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from bot.dashboard import charts
from bot.dashboard.access import Role
from handoff.leads import BASELINE_MAX_MINUTES, Session
from handoff.report import PeriodReport, build_period, minutes
from handoff.schedule import local_midnight, week_start_of
from handoff.service import utcnow
from storage import dashboard as store

log = logging.getLogger(__name__)

COOKIE = "eb_dashboard"
STATIC = Path(__file__).parent / "static"
PERIODS = {
    "this-week": "This week",
    "last-week": "Last week",
    "4w": "The last 4 weeks",
    "13w": "The last 13 weeks",
    "custom": "From … to …",
}
LONGEST_DAYS = 400
SIGN_IN_HOW = "Sign in from Slack with /escalate dashboard, or from Teams by sending dashboard to the bot."
# Nothing from elsewhere, ever: styles and images are the bot's own, the page runs no script.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=PackageLoader("bot.dashboard", "templates"), autoescape=select_autoescape(["html"]), trim_blocks=True
)
_templates.filters["minutes"] = minutes


def _page(template: str, status: int = 200, **values: Any) -> web.Response:
    body = _templates.get_template(template).render(**values)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)


def _message(title: str, text: str, status: int) -> web.Response:
    return _page("message.html", status, title=title, text=text, how=SIGN_IN_HOW)


@dataclass(frozen=True)
class Period:
    key: str
    start: date
    end: date  # the day after the last
    label: str


def period_of(query: Any, today: date) -> tuple[Period, str | None]:
    """The period the page's URL asks for (the current week when it asks for none), and a problem to
    show when what it asks for cannot be (the current week is shown instead)."""
    key = query.get("period", "this-week")
    monday = week_start_of(today)
    if key == "last-week":
        return Period(key, monday - timedelta(days=7), monday, PERIODS[key]), None
    if key in ("4w", "13w"):
        weeks = 4 if key == "4w" else 13
        return Period(key, monday - timedelta(days=7 * (weeks - 1)), monday + timedelta(days=7), PERIODS[key]), None
    if key == "custom":
        try:
            first, last = date.fromisoformat(query.get("from", "")), date.fromisoformat(query.get("to", ""))
        except ValueError:
            problem = "Give the custom range's first and last days (YYYY-MM-DD)."
        else:
            if first > last:
                problem = "The first day comes after the last."
            elif (last - first).days >= LONGEST_DAYS:
                problem = f"A range of at most {LONGEST_DAYS} days."
            else:
                return Period(key, first, last + timedelta(days=1), f"{first:%d %b %Y} – {last:%d %b %Y}"), None
        return Period("this-week", monday, monday + timedelta(days=7), PERIODS["this-week"]), problem
    if key != "this-week":
        return Period("this-week", monday, monday + timedelta(days=7), PERIODS["this-week"]), "No such period."
    return Period(key, monday, monday + timedelta(days=7), PERIODS[key]), None


@dataclass
class Visitor:
    session_id: str
    session: Session
    role: Role
    workspace: Any


class Dashboard:
    def __init__(self, runtime_of: Any):
        self.runtime_of = runtime_of  # request -> the runtime (made when the app starts)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/dashboard/signin/{token}", self.sign_in)
        app.router.add_get("/dashboard", self.to_page)
        app.router.add_get("/dashboard/", self.page)
        app.router.add_get("/dashboard/export.csv", self.export)
        app.router.add_get("/dashboard/static/{name}", self.static)
        app.router.add_post("/dashboard/baseline", self.baseline)
        app.router.add_post("/dashboard/signout", self.sign_out)
        app.router.add_route("*", "/dashboard/{rest:.*}", self.nothing_else)

    # ---- signing in and out ----------------------------------------------------------

    async def sign_in(self, request: web.Request) -> web.StreamResponse:
        rt = self.runtime_of(request)
        token = request.match_info["token"]
        started = await rt.service.sign_in(token) if _looks_like_a_secret(token) else None
        if started is None:
            return _message(
                "This sign-in link does not work",
                "It was used already, is more than 10 minutes old, or was never made by the bot. Ask for a new one.",
                403,
            )
        session_id, session = started
        role = await self._role(rt, session)
        if role is None:  # not a lead any more since the link was made
            await rt.service.sign_out(session_id)
            return _message("You are not a lead here", "Only leads can open the leads' page.", 403)
        response = web.Response(status=303, headers={**HEADERS, "Location": "/dashboard/"})
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=int((session.expires_at - utcnow()).total_seconds()),
            path="/dashboard",
            httponly=True,
            secure=rt.settings.public_url is not None and rt.settings.public_url.startswith("https://"),
            samesite="Lax",
        )
        return response

    async def sign_out(self, request: web.Request) -> web.StreamResponse:
        visitor = await self._visitor(request)
        if isinstance(visitor, web.Response):
            return visitor
        if (refused := await self._csrf(request, visitor)) is not None:
            return refused
        await self.runtime_of(request).service.sign_out(visitor.session_id)
        response = _message("Signed out", "You are signed out of the leads' page.", 200)
        response.del_cookie(COOKIE, path="/dashboard")
        return response

    async def _role(self, rt: Any, session: Session) -> Role | None:
        workspace = await rt.service.workspace(session.workspace_id)
        access = rt.dashboard_access.get(workspace.platform) if workspace is not None else None
        return await access.role(session.workspace_id, session.user_id) if access is not None else None

    async def _visitor(self, request: web.Request) -> Visitor | web.Response:
        """The signed-in lead, or the answer to give instead (401 without a session, 403 without the role)."""
        rt = self.runtime_of(request)
        session_id = request.cookies.get(COOKIE, "")
        session = await rt.service.signed_in(session_id) if _looks_like_a_secret(session_id) else None
        if session is None:
            return _message("Sign in first", "The leads' page needs a sign-in link from the bot.", 401)
        role = await self._role(rt, session)
        if role is None:
            await rt.service.sign_out(session_id)
            response = _message("You are not a lead here any more", "Ask a workspace admin if you should be one.", 403)
            response.del_cookie(COOKIE, path="/dashboard")
            return response
        return Visitor(session_id, session, role, await rt.service.workspace(session.workspace_id))

    async def _csrf(self, request: web.Request, visitor: Visitor) -> web.Response | None:
        form = await request.post()
        given = str(form.get("csrf", ""))
        if not given or not hmac.compare_digest(given, visitor.session.csrf):
            return _message("Not done", "This form is stale or did not come from the leads' page: reload it.", 403)
        return None

    # ---- the page --------------------------------------------------------------------

    async def to_page(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dashboard/")

    async def nothing_else(self, request: web.Request) -> web.StreamResponse:
        visitor = await self._visitor(request)
        if isinstance(visitor, web.Response):
            return visitor
        return _message("Not here", "There is no such page.", 404)

    async def static(self, request: web.Request) -> web.StreamResponse:
        visitor = await self._visitor(request)
        if isinstance(visitor, web.Response):
            return visitor
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return _message("Not here", "There is no such file.", 404)
        types = {".css": "text/css", ".svg": "image/svg+xml"}
        return web.Response(
            body=path.read_bytes(),
            content_type=types.get(path.suffix, "application/octet-stream"),
            headers={**HEADERS, "Cache-Control": "private, max-age=3600"},
        )

    def _scope(self, query: Any, role: Role, queues: list[Any]) -> tuple[Any, str | None]:
        """The queue the page shows (None: all of them), and a problem with what was asked for."""
        wanted = query.get("queue", "")
        visible = [q for q in queues if role.may_see(q.id)]
        if wanted in ("", "all") and role.whole_workspace:
            return None, None
        chosen = next((q for q in visible if str(q.id) == wanted), None)
        if chosen is not None:
            return chosen, None
        fallback = None if role.whole_workspace else (visible[0] if visible else None)
        return fallback, ("You lead only some queues: showing one of yours." if wanted not in ("", "all") else None)

    async def _report(self, rt: Any, visitor: Visitor, period: Period, queue: Any) -> PeriodReport:
        settings = rt.settings
        ws = visitor.session.workspace_id
        queues = await rt.service.queues(ws)
        return await build_period(
            rt.db,
            ws,
            period.start,
            period.end,
            timezone=settings.timezone,
            baseline_minutes=settings.manual_baseline_minutes,
            today=utcnow().astimezone(ZoneInfo(settings.timezone)).date(),
            queue=(queue.id, queue.name) if queue is not None else None,
            queues=[(q.id, q.name) for q in queues],
        )

    async def page(self, request: web.Request) -> web.StreamResponse:
        visitor = await self._visitor(request)
        if isinstance(visitor, web.Response):
            return visitor
        rt = self.runtime_of(request)
        today = utcnow().astimezone(ZoneInfo(rt.settings.timezone)).date()
        period, problem = period_of(request.query, today)
        queues = await rt.service.queues(visitor.session.workspace_id)
        queue, queue_problem = self._scope(request.query, visitor.role, queues)
        report = await self._report(rt, visitor, period, queue)
        filters = {"period": period.key, "queue": str(queue.id) if queue is not None else "all"}
        if period.key == "custom":
            filters.update({"from": period.start.isoformat(), "to": (period.end - timedelta(days=1)).isoformat()})
        people = [*report.this.claims_by, *report.this.resolves_by, *report.this.action_median_by]
        access = rt.dashboard_access[visitor.workspace.platform]
        names = await access.names(visitor.session.workspace_id, people) if people else {}
        day_labels = [f"{d:%a %d}" if len(report.days) <= 14 else f"{d:%d %b}" for d in report.days]
        week_labels = [f"{m:%d %b}" for m in report.trend_weeks]
        return _page(
            "page.html",
            workspace=visitor.workspace,
            role=visitor.role,
            csrf=visitor.session.csrf,
            period=period,
            periods=PERIODS,
            problems=[p for p in (problem, queue_problem) if p],
            queues=[q for q in queues if visitor.role.may_see(q.id)],
            queue=queue,
            r=report,
            query=urlencode(filters),
            filters=filters,
            volume_chart=charts.stacked_bars(
                report.this.per_day_by_severity or {"P3": [0] * len(report.days)},
                day_labels,
                "Escalations opened per day, by severity",
            ),
            claim_trend=charts.line(
                [v / 60 if v is not None else None for v in report.trend.per_day_claim_median],
                week_labels,
                "Median time to claim per week",
                " min",
            ),
            volume_trend=charts.stacked_bars(
                report.trend.per_day_by_severity or {"P3": [0] * len(week_labels)},
                week_labels,
                "Escalations opened per week, by severity",
            ),
            day_labels=day_labels,
            week_labels=week_labels,
            max_baseline=BASELINE_MAX_MINUTES,
            names=names,
        )

    # ---- what a lead sends ----------------------------------------------------------

    async def baseline(self, request: web.Request) -> web.StreamResponse:
        visitor = await self._visitor(request)
        if isinstance(visitor, web.Response):
            return visitor
        if (refused := await self._csrf(request, visitor)) is not None:
            return refused
        form = await request.post()
        raw = str(form.get("minutes", "")).strip()
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value <= BASELINE_MAX_MINUTES:
            return _message("Not recorded", f"Minutes a handoff took, 1 to {BASELINE_MAX_MINUTES}.", 400)
        rt = self.runtime_of(request)
        await rt.service.record_baseline(visitor.session.workspace_id, visitor.session.user_id, value)
        back = str(form.get("back", ""))
        raise web.HTTPSeeOther("/dashboard/" + (f"?{back}" if back and "\n" not in back and "//" not in back else ""))

    # ---- the CSV ----------------------------------------------------------------------

    async def export(self, request: web.Request) -> web.StreamResponse:
        visitor = await self._visitor(request)
        if isinstance(visitor, web.Response):
            return visitor
        rt = self.runtime_of(request)
        tz = ZoneInfo(rt.settings.timezone)
        today = utcnow().astimezone(tz).date()
        period, _problem = period_of(request.query, today)
        queue, _ = self._scope(request.query, visitor.role, await rt.service.queues(visitor.session.workspace_id))
        with_text = request.query.get("text") == "1"
        async with rt.db.read(heavy=True) as conn:
            names, rows = await store.period_rows(
                conn,
                visitor.session.workspace_id,
                local_midnight(period.start, tz),
                local_midnight(period.end, tz),
                queue.id if queue is not None else None,
                with_text,
            )
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(names)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
        last = period.end - timedelta(days=1)
        filename = f"escalations-{period.start.isoformat()}-to-{last.isoformat()}.csv"
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={**HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'},
        )


def _looks_like_a_secret(value: str) -> bool:
    """What secrets.token_urlsafe makes: anything else (a forged cookie, bytes that are not even
    UTF-8) is no session and no link, without a lookup."""
    return _SECRET.fullmatch(value) is not None


_SECRET = re.compile(r"[A-Za-z0-9_-]{20,100}")


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: a typed value that starts like a formula gets a quote."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

"""The process: one aiohttp application serving Slack (and, later, Teams), health
checks, and the delivery worker as a task beside them."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import ConfigError, Settings
from bot.dashboard.access import Access, SlackAccess, TeamsAccess
from bot.dashboard.web import Dashboard
from bot.delivery.base import Deliverer, DeliveryResult, Sent
from bot.delivery.worker import DeliveryWorker
from bot.inflight import AcknowledgedWork
from bot.logs import quiet_bad_requests
from bot.metrics import Metrics, Readings, scrape_reader, watch_loop_lag
from bot.scheduler import Scheduler
from bot.slack import boundary
from bot.slack.app import VERIFIED, build_slack_app
from bot.slack.client import make_client
from bot.slack.delivery import SlackDelivery
from bot.slack.deps import SlackDeps
from bot.slack.listeners.common import ACKED
from bot.slack.oauth import INSTALL_PATH, REDIRECT_PATH, oauth_settings
from bot.slack.workspaces import SlackWorkspaces
from bot.version import release
from handoff.domain import Outbound
from handoff.report import WeeklyReport, build_report
from handoff.schedule import week_start_of
from handoff.service import HandoffService, utcnow
from storage import migrate
from storage.db import Database, DatabaseProblem, describe
from storage.outbox import OutboxItem

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    service: HandoffService
    worker: DeliveryWorker
    session: aiohttp.ClientSession
    # Replies to people (Slack's response_url) have their own connections: two hundred "Already
    # claimed" replies in a storm must not take the connections the card's change goes out on.
    replies: aiohttp.ClientSession
    metrics: Metrics
    slack_app: AsyncApp | None = None
    slack_client: AsyncWebClient | None = None
    slack_verifier: SignatureVerifier | None = None
    ready: bool = False
    scrape: Callable[[], Awaitable[Readings]] | None = None  # what /metrics reads from the database
    dashboard_access: dict[str, Access] = field(default_factory=dict)  # the leads' page: who, per platform
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)  # stop when told, finishing what they hold
    watches: list[asyncio.Task[Any]] = field(default_factory=list)  # hold nothing: cancelled at once
    socket_handler: Any = None
    scheduler: Scheduler | None = None
    teams: Any = None

    acknowledged: AcknowledgedWork = field(default_factory=AcknowledgedWork)
    requests_in_hand: int = 0  # Slack's and Teams' requests being answered now
    request_answered: float = 0.0  # time.monotonic() when the latest one was answered
    stopping_since: float | None = None  # monotonic time the replica was told to stop
    _finished_before_stop: int = 0

    def busy(self) -> bool:
        """Whether people's requests are in hand here (being answered, or the work behind an ack)."""
        return self.requests_in_hand > 0 or len(self.acknowledged) > 0

    def idle_for(self) -> float:
        """Seconds this replica has been without people's requests (0 while it has some): retention's
        batches wait for it to be quiet."""
        if self.busy():
            return 0.0
        return time.monotonic() - max(self.request_answered, self.acknowledged.last_done)

    def begin_stopping(self) -> None:
        """Told to stop (SIGTERM): take no more work, say so. The HTTP server has stopped listening."""
        if self.stopping_since is not None:
            return
        self.stopping_since = time.monotonic()
        self._finished_before_stop = self.acknowledged.finished
        self.ready = False
        log.info(
            "stopping: taking no new requests; finishing %d acknowledged request(s) and %d send(s) in hand "
            "(up to %.0f s)",
            len(self.acknowledged),
            self.worker.in_hand,
            self.settings.shutdown_grace_seconds,
        )

    async def close(self) -> None:
        """Stop: finish what was acknowledged (within SHUTDOWN_GRACE_SECONDS of being told), let the
        worker finish its sends, hand back the leases of any it could not, then close connections."""
        self.begin_stopping()
        assert self.stopping_since is not None
        deadline = self.stopping_since + self.settings.shutdown_grace_seconds

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        if self.socket_handler is not None:
            await self.socket_handler.close_async()
        sent_before = self.worker.sent
        # The worker keeps sending meanwhile: what that work queues (the card's change) goes out from here.
        cut_short = await self.acknowledged.finish(timeout=left())
        self.worker.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        for task in self.watches:
            task.cancel()
        # The worker finishes the sends in hand and records them; past the deadline they are cut short.
        _done, pending = await asyncio.wait(self.tasks, timeout=max(left(), 0.5)) if self.tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.watches, return_exceptions=True)
        handed_back = 0
        try:
            async with asyncio.timeout(3.0):
                handed_back = await self.worker.hand_back()
        except Exception as exc:  # the database is away: the leases run out instead
            log.warning("could not hand back outbox leases (they run out in %s s): %s", self.worker.lease, exc)
        log.info(
            "stopped after %.1f s: %d acknowledged request(s) finished, %d cut short; %d message(s) sent while "
            "stopping; %d unfinished send(s) handed back to the other replicas",
            time.monotonic() - self.stopping_since,
            self.acknowledged.finished - self._finished_before_stop,
            cut_short,
            self.worker.sent - sent_before,
            handed_back,
        )
        await self.session.close()
        await self.replies.close()
        await self.db.dispose()


async def start_runtime(
    settings: Settings,
    *,
    run_worker: bool = True,
    run_scheduler: bool = True,
    connect_socket: bool = True,
    worker_owner: str | None = None,
) -> Runtime:
    db = settings.database()
    try:
        await prepare_schema(settings, db)
    except BaseException:
        await db.dispose()
        raise
    service = HandoffService(db)
    session = aiohttp.ClientSession()
    deliverers: dict[str, Deliverer] = {}

    platforms: dict[int, str] = {}

    async def deliverer_for(workspace_id: int) -> Deliverer:
        platform = platforms.get(workspace_id)
        if platform is None:  # a workspace never changes platform: look it up once
            ws = await service.workspace(workspace_id)
            platform = platforms[workspace_id] = ws.platform if ws is not None else "slack"
        try:
            return deliverers[platform]
        except KeyError:
            raise RuntimeError(f"no {platform} connection configured for workspace {workspace_id}") from None

    worker = DeliveryWorker(
        db,
        deliverer_for,
        owner=worker_owner,
        lease_seconds=settings.outbox_lease_seconds,
        max_attempts=settings.outbox_max_attempts,
        backoff_cap_seconds=settings.outbox_backoff_cap_seconds,
        poll_seconds=settings.outbox_poll_seconds,
    )
    service.set_on_commit(worker.wake)
    metrics = Metrics(version=release())

    def platform_of(workspace_id: int) -> str:
        return platforms.get(workspace_id, "slack")

    worker.on_result = _delivery_observer(metrics, platform_of)
    rt = Runtime(
        settings=settings,
        db=db,
        service=service,
        worker=worker,
        session=session,
        replies=aiohttp.ClientSession(),
        metrics=metrics,
        scrape=scrape_reader(
            service,
            lead_alert_minutes=settings.lead_alert_minutes,
            weekday=settings.report_weekday,
            at=settings.report_time,
            timezone=settings.timezone,
        ),
    )

    async def report_for(workspace_id: int, week: date, queue_id: int | None = None) -> WeeklyReport:
        """The workspace's report (with a line per queue where it has several), or one queue's."""
        queues = await service.queues(workspace_id)
        queue = next(((q.id, q.name) for q in queues if q.id == queue_id), None) if queue_id is not None else None
        return await build_report(
            db,
            workspace_id,
            week,
            timezone=settings.timezone,
            baseline_minutes=settings.manual_baseline_minutes,
            queue=queue,
            queues=[(q.id, q.name) for q in queues],
        )

    if settings.slack_enabled:
        assert settings.slack_signing_secret is not None
        oauth = oauth_settings(settings, db.transactional_engine) if settings.slack_oauth_enabled else None
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token and not oauth else None
        client = make_client(
            token=token,
            base_url=settings.slack_api_base_url,
            session=session,
            timeout=settings.slack_api_timeout_seconds,
            on_call=lambda method, outcome: metrics.api_call("slack", method, outcome),
        )
        workspaces = SlackWorkspaces(service, settings, client, oauth.installation_store if oauth else None)

        async def week_so_far(workspace_id: int, queue_id: int | None = None) -> WeeklyReport:
            today = utcnow().astimezone(ZoneInfo(settings.timezone)).date()
            return await report_for(workspace_id, week_start_of(today), queue_id)

        rt.dashboard_access["slack"] = SlackAccess(workspaces, service)
        deps = SlackDeps(
            service=service,
            workspaces=workspaces,
            metrics=metrics,
            stats_for=week_so_far,
            access=rt.dashboard_access["slack"],
            public_url=settings.public_url,
        )
        rt.slack_client = client
        rt.slack_verifier = SignatureVerifier(settings.slack_signing_secret.get_secret_value())
        rt.slack_app = build_slack_app(
            signing_secret=settings.slack_signing_secret.get_secret_value(),
            client=client,
            deps=deps,
            oauth=oauth,
            session=rt.replies,
            reply_timeout=settings.slack_api_timeout_seconds,
            acknowledged=rt.acknowledged,
        )
        deliverers["slack"] = SlackDelivery(service, workspaces, report_for=report_for)

    if settings.teams_app_id:
        if not settings.teams_tenant_id:
            raise ConfigError("TEAMS_TENANT_ID: missing; set your Entra tenant id (a GUID)")
        from bot.teams.app import TeamsBot
        from bot.teams.delivery import TeamsDelivery

        rt.teams = TeamsBot(settings, service, metrics)
        rt.dashboard_access["teams"] = rt.teams.access = TeamsAccess(settings.teams_lead_user_ids, service)

        async def teams_week_so_far(workspace_id: int, queue_id: int | None = None) -> WeeklyReport:
            today = utcnow().astimezone(ZoneInfo(settings.timezone)).date()
            return await report_for(workspace_id, week_start_of(today), queue_id)

        rt.teams.stats_for = teams_week_so_far
        deliverers["teams"] = TeamsDelivery(rt.teams, service, report_for=report_for)
        if settings.teams_allow_anonymous:
            log.warning(
                "TEAMS_ALLOW_ANONYMOUS is on: /api/messages accepts requests without a Bot Framework token. "
                "Use it for local development only."
            )

    if run_worker:
        rt.tasks.append(asyncio.create_task(worker.run(), name="delivery-worker"))
        rt.watches.append(asyncio.create_task(watch_loop_lag(metrics), name="loop-lag"))
    if run_scheduler:
        rt.scheduler = Scheduler(
            service, settings, every_seconds=settings.scheduler_seconds, metrics=metrics, idle=rt.idle_for
        )
        rt.tasks.append(asyncio.create_task(rt.scheduler.run(), name="scheduler"))
    if connect_socket and settings.slack_app_token is not None and rt.slack_app is not None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        rt.socket_handler = AsyncSocketModeHandler(rt.slack_app, settings.slack_app_token.get_secret_value())
        await rt.socket_handler.connect_async()
        log.info("Socket Mode connected")
    rt.ready = True
    return rt


async def prepare_schema(settings: Settings, db: Database) -> None:
    """Upgrade the schema (on DATABASE_MIGRATION_URL when set), or, when migrations are a step of
    their own (MIGRATE_ON_START=false, `serve --no-migrate`), refuse a schema this release cannot
    serve. Either way a problem is one line (DatabaseProblem)."""
    if not settings.migrate_on_start:
        problem = await migrate.serving_problem(db)
        if problem is not None:
            raise DatabaseProblem(problem)
        return
    target = (
        settings.database(migrations=True)
        if settings.database_migration_url or settings.database_pooler != "none"
        else db
    )
    try:
        await migrate.upgrade(target)
    except DatabaseProblem:
        raise
    except Exception as exc:  # the one line `serve` prints; the traceback helps nobody here
        raise DatabaseProblem(describe(target.url, exc)) from None
    finally:
        if target is not db:
            await target.dispose()


def _delivery_observer(
    metrics: Metrics, platform_of: Callable[[int], str]
) -> Callable[[OutboxItem, DeliveryResult, float], None]:
    def observe(item: OutboxItem, result: DeliveryResult, seconds: float) -> None:
        label = type(result).__name__.lower()
        metrics.delivery.labels(item.kind, label).observe(seconds)
        if isinstance(result, Sent):
            lag = (utcnow() - item.created_at).total_seconds()
            metrics.delivery_lag.labels(item.kind).observe(lag)
            if item.kind == Outbound.POST_CARD:
                # The card's row is written with the escalation: its age is submission to card.
                metrics.submission_to_card.labels(platform_of(item.workspace_id)).observe(lag)

    return observe


def _request_kind(body: str) -> str:
    if body.startswith("payload="):
        return "interactive"
    if body.startswith("{"):
        return "event"
    return "command"


RUNTIME = web.AppKey("runtime", Runtime)


def make_web_app(settings: Settings, **runtime_kwargs: Any) -> web.Application:
    quiet_bad_requests()
    app = web.Application()

    async def lifecycle(app: web.Application) -> Any:
        # The code start-up imported (~120,000 objects: modules, classes, SQLAlchemy's and Bolt's
        # tables) lives as long as the process: keep the cyclic collector from walking it again and
        # again (a full collection walked it all, ~90 ms without the event loop). Frozen before the
        # runtime exists, so nothing it builds and later drops is kept.
        gc.collect()
        gc.freeze()
        rt = await start_runtime(settings, **runtime_kwargs)
        app[RUNTIME] = rt
        yield
        await rt.close()

    app.cleanup_ctx.append(lifecycle)

    async def stop_taking_work(app: web.Application) -> None:
        # Runs once the server has stopped listening, before it waits for the requests in flight.
        rt = app.get(RUNTIME)
        if rt is not None:
            rt.begin_stopping()

    app.on_shutdown.append(stop_taking_work)

    async def slack_events(request: web.Request) -> web.StreamResponse:
        rt = request.app[RUNTIME]
        if rt.slack_app is None:
            return web.json_response({"error": "Slack is not configured"}, status=404)
        started = time.perf_counter()
        raw = await request.read()
        # Verify, then parse: nothing from an unsigned body is read, stored or called.
        if rt.slack_verifier is None or not boundary.verify(rt.slack_verifier, raw, request.headers):
            rt.metrics.rejected.labels("slack", "signature").inc()
            return web.json_response({"error": "invalid request signature"}, status=401)
        bolt_req = boundary.parse(raw, request.headers, request.query_string)
        if isinstance(bolt_req, boundary.Rejected):
            boundary.warn(bolt_req)
            rt.metrics.rejected.labels("slack", "malformed").inc()
            return web.json_response({"error": "malformed request"}, status=bolt_req.status)
        # Slack's 3 seconds run from here: handlers that store inside the ack measure from it.
        bolt_req.context["received_at"] = started
        bolt_req.context[VERIFIED] = True
        acked = bolt_req.context[ACKED] = asyncio.Event()
        try:
            bolt_resp = await rt.slack_app.async_dispatch(bolt_req)
        finally:
            acked.set()
        response = await to_aiohttp_response(bolt_resp)
        elapsed = time.perf_counter() - started
        rt.metrics.ack.labels("slack", _request_kind(bolt_req.raw_body)).observe(elapsed)
        log.debug("slack request answered %s in %.1f ms", response.status, elapsed * 1000)
        return response

    async def healthz(request: web.Request) -> web.Response:
        rt = request.app.get(RUNTIME)
        if rt is None or not rt.ready:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        rt = request.app[RUNTIME]
        problem = await rt.db.problem(timeout=3.0)
        if problem is None:
            return web.json_response({"status": "ready", "database": "ok"})
        return web.json_response({"status": "not ready", "database": problem}, status=503)

    async def metrics(request: web.Request) -> web.Response:
        rt = request.app[RUNTIME]
        body = await rt.metrics.render(rt.db, rt.scrape)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def teams_messages(request: web.Request) -> web.StreamResponse:
        rt = request.app[RUNTIME]
        started = time.perf_counter()
        response = await rt.teams.handle(request)
        rt.metrics.ack.labels("teams", "activity").observe(time.perf_counter() - started)
        return response

    def counted(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        async def answer(request: web.Request) -> web.StreamResponse:
            rt = request.app[RUNTIME]
            rt.requests_in_hand += 1
            try:
                return await handler(request)
            finally:
                rt.requests_in_hand -= 1
                rt.request_answered = time.monotonic()

        return answer

    if settings.teams_app_id:
        app.router.add_post("/api/messages", counted(teams_messages))

    app.router.add_post("/slack/events", counted(slack_events))
    if settings.slack_enabled and settings.slack_oauth_enabled:
        # Bolt's install page and OAuth redirect (browser GETs, not signed by Slack).
        async def slack_oauth(request: web.Request) -> web.StreamResponse:
            rt = request.app[RUNTIME]
            flow = rt.slack_app.oauth_flow if rt.slack_app is not None else None
            if flow is None:
                return web.json_response({"error": "Slack OAuth is not configured"}, status=404)
            bolt_req = await to_bolt_request(request)
            if request.path == INSTALL_PATH:
                return await to_aiohttp_response(await flow.handle_installation(bolt_req))
            return await to_aiohttp_response(await flow.handle_callback(bolt_req))

        app.router.add_get(INSTALL_PATH, slack_oauth)
        app.router.add_get(REDIRECT_PATH, slack_oauth)
    Dashboard(lambda request: request.app[RUNTIME]).routes(app)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app

"""The whole stack running on an event loop in a thread of its own: the real bot server (Slack and
Teams, tokens required), the fake Slack Web API, the fake Teams connector, the fake Microsoft
sign-in service and a server outside all of them. Synchronous tests (Hypothesis drives examples one
by one and cannot await) send requests into it and read what happened."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.sandbox.fake_login import FakeLogin
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.fake_teams import TENANT, FakeTeamsConnector
from bot.sandbox.simulator import SlackSimulator
from bot.sandbox.teams_simulator import TeamsSimulator
from bot.sandbox.watch import serve_on_loopback
from bot.server import RUNTIME, Runtime, make_web_app
from storage.tables import handoff_events, handoffs, outbox
from tests.cardcheck import card_problems
from tests.conftest import CHANNELS, SECRET, TEAM, TOKEN
from tests.edge import RawAnswer, raw_post
from tests.teams import token_settings

T = TypeVar("T")
APP_ID = "00000000-0000-0000-0000-00000000f022"
APP_SECRET = "fuzz-app-secret-55c1"


@dataclass
class Live:
    loop: asyncio.AbstractEventLoop
    url: str
    outside_url: str
    outside_hits: list[tuple[str, str]]
    slack: FakeSlack
    connector: FakeTeamsConnector
    login: FakeLogin
    app: web.Application
    slack_sim: SlackSimulator
    teams_sim: TeamsSimulator

    @property
    def runtime(self) -> Runtime:
        return self.app[RUNTIME]

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def post(self, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> RawAnswer:
        return self.run(raw_post(self.url + path, body, headers))

    def outbound(self) -> tuple[int, int, int, int]:
        """Everything the bot has sent anywhere: Slack calls, response_url replies, connector calls,
        and requests to the outside server."""
        return len(self.slack.calls), len(self.slack.replies), len(self.connector.calls), len(self.outside_hits)

    def state(self) -> tuple[Any, ...]:
        """What a request could change: each escalation's state, the audit trail, the outbox."""

        async def read() -> tuple[Any, ...]:
            async with self.runtime.db.read() as conn:
                rows = (
                    await conn.execute(
                        select(handoffs.c.id, handoffs.c.status, handoffs.c.version, handoffs.c.claimed_by).order_by(
                            handoffs.c.id
                        )
                    )
                ).all()
                events = len((await conn.execute(select(handoff_events.c.id))).all())
                queued = len((await conn.execute(select(outbox.c.id))).all())
            return tuple(map(tuple, rows)), events, queued

        return self.run(read())

    def settle(self) -> None:
        """Wait until what the bot queued has gone out (so a later example is not blamed for it)."""
        self.run(self.runtime.worker.drain(timeout=20))


@pytest.fixture
def live(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="live-stack", daemon=True)
    thread.start()
    cleanup: list[Any] = []

    async def start() -> Live:
        hits: list[tuple[str, str]] = []

        async def record(request: web.Request) -> web.Response:
            hits.append((request.method, request.path_qs))
            return web.Response(text="ok")

        outside_app = web.Application()
        outside_app.router.add_route("*", "/{tail:.*}", record)
        outside_runner, outside_port = await serve_on_loopback(outside_app)
        slack = await FakeSlack(team_id=TEAM, bot_token=TOKEN, channels=CHANNELS).start()
        login = await FakeLogin(tenant=TENANT, app_id=APP_ID, app_secret=APP_SECRET).start()
        connector = await FakeTeamsConnector(login=login, card_check=card_problems).start()
        for name, value in login.tls.trust_env().items():
            monkeypatch.setenv(name, value)
        app = make_web_app(token_settings(db_url, slack, connector, login, scheduler_seconds=3600))
        runner, port = await serve_on_loopback(app)
        url = f"http://127.0.0.1:{port}"
        slack_sim = await SlackSimulator(url, SECRET, fake=slack, team_id=TEAM).__aenter__()
        import aiohttp

        session = aiohttp.ClientSession()
        teams_sim = TeamsSimulator(url, connector, session=session, login=login)
        cleanup.extend([session.close, slack_sim.__aexit__, runner.cleanup, login.stop, connector.stop, slack.stop])
        cleanup.append(outside_runner.cleanup)
        return Live(
            loop, url, f"http://127.0.0.1:{outside_port}", hits, slack, connector, login, app, slack_sim, teams_sim
        )

    try:
        stack = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
        yield stack
    finally:

        async def stop() -> None:
            for step in cleanup:
                result = step() if step.__name__ != "__aexit__" else step(None, None, None)
                if asyncio.iscoroutine(result):
                    await result

        asyncio.run_coroutine_threadsafe(stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

"""Tools for tests that play the hostile internet: raw HTTP requests (any bytes, any headers),
a server outside the bot that records whatever reaches it, and what the database holds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from sqlalchemy import func, select

from bot.sandbox.watch import serve_on_loopback
from storage.db import Database
from storage.tables import handoff_events, handoffs, outbox, processed_events, workspaces


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_post(url: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> RawAnswer:
    """POST exactly these bytes with exactly these headers (no client library cleaning them up)."""
    parts = urlsplit(url)
    return await raw_request(url, b"POST", parts.path.encode(), body, headers)


async def raw_request(
    url: str, method: bytes, target: bytes, body: bytes, headers: list[tuple[bytes, bytes]]
) -> RawAnswer:
    """Exactly this request line's method and target (path and query, any bytes), these headers and
    this body, to the server at `url`."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [method + b" " + target + b" HTTP/1.1", f"Host: {parts.netloc}".encode()]
        head += [k + b": " + v for k, v in headers]
        head += [f"Content-Length: {len(body)}".encode(), b"Connection: close", b"", b""]
        writer.write(b"\r\n".join(head) + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    answer_headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        answer_headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return RawAnswer(int(status_line.split()[1]), answer_headers, payload)


@dataclass
class Outside:
    """A server that is neither Slack nor Teams: anything that reaches it was sent where it should not be."""

    url: str
    hits: list[tuple[str, str, bytes]] = field(default_factory=list)


@pytest.fixture
async def outside() -> AsyncIterator[Outside]:
    found = Outside(url="")

    async def record(request: web.Request) -> web.Response:
        found.hits.append((request.method, request.path_qs, await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner, port = await serve_on_loopback(app)
    found.url = f"http://127.0.0.1:{port}"
    try:
        yield found
    finally:
        await runner.cleanup()


async def stored(db: Database) -> dict[str, int]:
    """How many rows each table a request could write to holds."""
    out: dict[str, int] = {}
    async with db.read() as conn:
        for table in (workspaces, handoffs, handoff_events, outbox, processed_events):
            out[table.name] = int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    return out


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    """Log lines at ERROR or above that carry a traceback."""
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR and (r.exc_info or r.exc_text)]


def errors(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR]


def warnings_from(records: list[logging.LogRecord], logger: str) -> list[str]:
    return [r.getMessage() for r in records if r.levelno == logging.WARNING and r.name.startswith(logger)]


def form(pairs: dict[str, Any]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(pairs).encode()

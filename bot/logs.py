"""Logging: text or one JSON object per line, with secrets scrubbed from every record."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# Tokens Slack issues, whatever settings they came from.
_TOKEN_RE = re.compile(r"\b(xox[abposre]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+)")
REDACTED = "[redacted]"

# Set while handling one handoff, so every line about it says which.
log_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("log_context", default=None)


def bind_log(**fields: Any) -> None:
    """Add fields (handoff, workspace, …) to every log line from here on in this task."""
    current = dict(log_context.get() or {})
    current.update({k: v for k, v in fields.items() if v is not None})
    log_context.set(current)


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return _TOKEN_RE.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        record.msg, record.args = scrubbed, None
        ctx = log_context.get()
        if ctx:
            for k, v in ctx.items():
                if not hasattr(record, k):
                    setattr(record, k, v)
        return True


class JsonFormatter(logging.Formatter):
    _SKIP = set(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in self._SKIP and not k.startswith("_"):
                out[k] = v if isinstance(v, str | int | float | bool | type(None)) else str(v)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [f"{k}={getattr(record, k)}" for k in ("workspace", "handoff") if hasattr(record, k)]
        return f"{line} [{' '.join(tags)}]" if tags else line


class QuietBadRequests(logging.Filter):
    """aiohttp logs a request it cannot even parse as HTTP (a NUL in a header, a line too long) at
    ERROR with a traceback. That is the internet being the internet, not a fault of ours: keep one
    WARNING line saying what was refused."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = " ".join(str(exc.message).split())[:200]
            record.msg, record.args = "refused a malformed HTTP request (%s): %s", (exc.code, reason)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


_CONNECTOR_REFUSAL = re.compile(r"^An error occurred in the AgentApplication: (\d{3}), message=")


class QuietActivityErrors(logging.Filter):
    """Two things the Agents SDK logs at ERROR with a traceback that are not faults of ours: an activity
    that fails its schema (the gate refuses it with 400 and says why), and Teams refusing an answer
    (429 throttled, 404 gone: the turn's error handler says so in a line). Each becomes one WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        message = str(record.msg)
        # The SDK formats the error into its message and logs outside the except block (no exc_info).
        refused = _CONNECTOR_REFUSAL.search(message)
        if message.startswith("Validation error for Activity"):
            record.msg, record.args = "an activity failed the Activity schema", None
        elif type(exc).__name__ == "ClientResponseError" or refused:
            status = getattr(exc, "status", None) or (refused.group(1) if refused else "?")
            record.msg, record.args = "the Teams connector refused an answer: %s", (status,)
        else:
            return True
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


def quiet_bad_requests() -> None:
    """Install the filters that keep what the internet sends from writing tracebacks, once."""
    for name, kind in (
        ("aiohttp.server", QuietBadRequests),
        ("microsoft_agents.activity.activity", QuietActivityErrors),
        ("microsoft_agents.hosting.core.app.agent_application", QuietActivityErrors),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


def setup_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactSecrets(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp logs every request at INFO; keep that for DEBUG runs only.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)

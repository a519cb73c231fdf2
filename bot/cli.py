"""`escalation-bot`: serve, migrate, and see it work offline."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging

log = logging.getLogger("escalation-bot")


def _fail(message: str, code: int = 2) -> int:
    print(f"escalation-bot: {message}", file=sys.stderr)
    return code


def _settings() -> Settings:
    return load_settings()


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.server import make_web_app

    settings = _settings()
    settings.require_for_serve()
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    app = make_web_app(settings)
    try:
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            print=lambda msg: log.info(" ".join(str(msg).split())),
            access_log=None,
            backlog=1024,
        )
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", 1)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from storage import migrate
    from storage.db import Database, StorageUnavailable

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format, settings.secrets())

    async def run() -> str | None:
        db = Database(settings.database_url)
        try:
            if args.action == "upgrade":
                await migrate.upgrade(db)
            return await migrate.current_revision(db)
        finally:
            await db.dispose()

    try:
        revision = asyncio.run(run())
    except StorageUnavailable as exc:
        return _fail(f"DATABASE_URL: cannot reach the database: {exc}", 1)
    print(f"database at revision {revision or '(empty)'} (head is {migrate.head_revision()})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return asyncio.run(run_demo(verbose=args.verbose))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escalation-bot",
        description="Structured, claimable escalations for support teams in Slack and Teams.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (HTTP on /slack/events, Socket Mode if SLACK_APP_TOKEN is set)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=3000)
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "current"], help="upgrade to the latest schema, or show the revision")
    db.set_defaults(func=cmd_db)

    demo = sub.add_parser("demo", help="the whole flow offline against a fake Slack workspace, in seconds")
    demo.add_argument("--verbose", action="store_true", help="also show the bot's log")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

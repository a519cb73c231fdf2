"""`escalation-bot`: serve, migrate, and see it work offline."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging
from bot.version import release

if TYPE_CHECKING:
    from handoff.service import HandoffService
    from storage.db import Database
    from storage.outbox import OutboxItem

log = logging.getLogger("escalation-bot")


def _fail(message: str, code: int = 2) -> int:
    print(f"escalation-bot: {message}", file=sys.stderr)
    return code


def _settings() -> Settings:
    return load_settings()


def _database_failed(exc: BaseException) -> int:
    """One line naming what is wrong with DATABASE_URL, and status 1."""
    return _fail(f"DATABASE_URL: {exc}", 1)


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.server import make_web_app
    from storage.db import DatabaseProblem, StorageUnavailable, open_checked

    settings = _settings()
    if args.no_migrate:
        settings = settings.model_copy(update={"migrate_on_start": False})
    settings.require_for_serve()
    setup_logging(settings.log_level, settings.log_format, settings.secrets())

    async def preflight() -> None:
        await (await open_checked(settings.database_url, pooler=settings.database_pooler)).dispose()

    try:
        asyncio.run(preflight())  # before listening: a database it cannot use stops it here, in one line
    except DatabaseProblem as exc:
        return _database_failed(exc)
    app = make_web_app(settings)
    try:
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            print=lambda msg: log.info(" ".join(str(msg).split())),
            access_log=None,
            backlog=1024,
            # On SIGTERM: requests in flight get this long to finish (then the runtime finishes the
            # work they acknowledged, within the same bound: Runtime.close).
            shutdown_timeout=settings.shutdown_grace_seconds,
        )
    except (DatabaseProblem, StorageUnavailable) as exc:  # it changed between the check and the start
        return _database_failed(exc)
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", 1)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from storage import migrate
    from storage.db import DatabaseProblem, StorageUnavailable, describe, open_checked

    settings = _settings()
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    if args.action == "backup":
        return _db_backup(settings, args)
    if args.action == "downgrade" and not args.revision:
        return _fail(
            "db downgrade REVISION: say which revision to go back to (`escalation-bot db current` shows where it is)"
        )

    async def run() -> str:
        if args.action in ("upgrade", "downgrade"):
            # Migrations go to PostgreSQL itself: DATABASE_MIGRATION_URL, or DATABASE_URL without a pooler.
            await settings.database(migrations=True).dispose()  # ConfigError (one line) behind a pooler without it
            db = await open_checked(settings.database_migration_url or settings.database_url, write=True)
        else:
            db = await open_checked(settings.database_url, write=False, pooler=settings.database_pooler)
        try:
            if args.action == "upgrade":
                before = await migrate.upgrade(db)
                if before.newer:
                    return (
                        f"the database is at revision {before.current}, newer than this release ({before.head}), "
                        f"which can serve it (it serves releases from {before.serves_from}): nothing to upgrade"
                    )
            elif args.action == "downgrade":
                undone = await migrate.downgrade(db, args.revision)
                if not undone:
                    return f"nothing to undo: the database is at or before {args.revision}"
                print(f"undid {', '.join(undone)}")
            found = await migrate.state(db)
            where = found.current or "(empty)"
            if found.newer:
                can = "can" if found.servable else "cannot"
                return f"database at revision {where}, newer than this release ({found.head}), which {can} serve it"
            return f"database at revision {where} (head is {found.head})"
        except StorageUnavailable as exc:
            raise DatabaseProblem(describe(db.url, exc)) from None
        finally:
            await db.dispose()

    try:
        print(asyncio.run(run()))
    except DatabaseProblem as exc:
        return _database_failed(exc)
    return 0


def _db_backup(settings: Settings, args: argparse.Namespace) -> int:
    """`db backup FILE`: SQLite's online backup, consistent while the bot writes."""
    from storage.backup import BackupProblem, backup_sqlite
    from storage.db import make_url

    if not args.revision:
        return _fail("db backup FILE: say where to write the backup")
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return _fail(
            "db backup is for SQLite; back PostgreSQL up with pg_dump and restore it with pg_restore "
            '(docs/operations.md, "Back up")',
            1,
        )
    try:
        done = backup_sqlite(Path(url.database or ""), Path(args.revision))
    except BackupProblem as exc:
        return _fail(str(exc), 1)
    print(
        f"backed up {done.escalations} escalation(s) to {args.revision} ({done.size_bytes:,} bytes, as of "
        f"{done.taken_at:%Y-%m-%d %H:%M:%S} UTC); its {done.pending} pending message(s) will be looked for "
        "before they are sent again from a restored copy"
    )
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from handoff.service import utcnow
    from storage import outbox
    from storage.db import DatabaseProblem, StorageUnavailable, open_checked

    settings = _settings()
    setup_logging("WARNING", settings.log_format, settings.secrets())

    async def run() -> int:
        db = await open_checked(
            settings.database_url, write=args.action in ("retry", "recheck"), pooler=settings.database_pooler
        )
        try:
            if args.action == "retry":
                async with db.write() as conn:
                    n = await outbox.requeue(conn, args.ids, utcnow())
                print(f"queued {n} of {len(args.ids)} message(s) to be sent again")
                return 0 if n == len(args.ids) else 1
            if args.action == "recheck":
                from storage.backup import RESTORED

                async with db.write() as conn:
                    n = await outbox.recheck(conn, RESTORED)
                print(f"{n} pending message(s) will be looked for before they are sent")
                return 0
            async with db.read() as conn:
                rows = await outbox.list_items(conn, status="dead" if args.dead else args.status, limit=args.limit)
            if not rows:
                print("no dead messages" if args.dead else "the outbox is empty")
                return 0
            header = f"{'id':>6}  {'status':<7} {'kind':<16} {'escalation':<18} {'tries':>5}  {'next try (UTC)':<19}"
            print(header + "  last error")
            for item, team, number in rows:
                esc = f"{team}/ESC-{number}" if number is not None else (team or "")
                nxt = (
                    item.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S")
                    if item.status == "pending" and item.next_attempt_at
                    else ""
                )
                print(
                    f"{item.id:>6}  {item.status:<7} {item.kind:<16} {esc:<18} {item.attempts:>5}  {nxt:<19}  "
                    f"{(item.last_error or '')[:120]}"
                )
            return 0
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except (DatabaseProblem, StorageUnavailable) as exc:
        return _database_failed(exc)


async def _workspaces(db: Database, which: str | None) -> list[tuple[int, str]]:
    """(id, Slack team id / Teams tenant id) of every workspace, or of the one `which` names (either
    of the two ids)."""
    from sqlalchemy import or_, select

    from storage.tables import workspaces

    stmt = select(workspaces.c.id, workspaces.c.external_id).order_by(workspaces.c.id)
    if which:
        cond = workspaces.c.external_id == which
        if which.isdigit():
            cond = or_(cond, workspaces.c.id == int(which))
        stmt = stmt.where(cond)
    async with db.read() as conn:
        return [(int(ws), str(ext)) for ws, ext in (await conn.execute(stmt)).all()]


def cmd_report(args: argparse.Namespace) -> int:
    import json
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from handoff.report import as_text, build_report, one_line
    from handoff.schedule import iso_week, parse_iso_week, week_start_of
    from storage import migrate
    from storage.db import DatabaseProblem, StorageUnavailable, open_checked

    settings = _settings()
    setup_logging("WARNING", settings.log_format, settings.secrets())
    if args.week:
        try:
            week = parse_iso_week(args.week)
        except ValueError as exc:
            return _fail(f"--week: {exc}")
    else:
        week = week_start_of(datetime.now(ZoneInfo(settings.timezone)).date()) - timedelta(days=7)

    if args.queue and args.post:
        return _fail("--post sends the workspace's report; a queue's report goes to its leads channel on schedule")

    async def run() -> int:

        db = await open_checked(settings.database_url, pooler=settings.database_pooler)
        try:
            if settings.database_pooler == "none":
                await migrate.upgrade(db)  # a report on a new database says there is nothing yet
            elif problem := await migrate.serving_problem(db):
                print(problem, file=sys.stderr)
                return 1
            targets = await _workspaces(db, args.workspace)
            if not targets:
                print("no such workspace" if args.workspace else "no workspaces yet: nothing has been escalated")
                return 1 if args.workspace else 0
            reports = []
            for ws, ext in targets:
                queue = None
                if args.queue:
                    from handoff.service import HandoffService

                    queue = next((q for q in await HandoffService(db).queues(ws) if q.answers_to(args.queue)), None)
                    if queue is None:
                        print(f"[{one_line(ext)}] has no queue named {one_line(args.queue, 80)}")
                        continue
                reports.append(
                    (
                        ext,
                        await build_report(
                            db,
                            ws,
                            week,
                            timezone=settings.timezone,
                            baseline_minutes=settings.manual_baseline_minutes,
                            queue=(queue.id, queue.name) if queue is not None else None,
                        ),
                    )
                )
            if not reports:
                return 1
        finally:
            await db.dispose()
        if args.format == "json":
            print(json.dumps([{"workspace": ext, **r.to_json()} for ext, r in reports], indent=2, default=str))
        else:
            print("\n\n".join(f"[{one_line(ext)}]\n{as_text(r)}" for ext, r in reports))
        if args.chart:
            from bot.charts import weekly_chart

            for ext, r in reports:
                path = (
                    Path(args.chart)
                    if len(reports) == 1
                    else Path(args.chart).with_stem(f"{Path(args.chart).stem}-{ext}")
                )
                path.write_bytes(weekly_chart(r))
                print(f"chart written to {path}", file=sys.stderr)
        if args.post:
            return await post([(ws, ext) for ws, ext in targets])
        return 0

    async def post(workspace_ids: list[tuple[int, str]]) -> int:
        """Post now, and say what happened to each: exit 0 only if every report and chart went out."""
        from bot.server import start_runtime

        if not settings.slack_enabled or not settings.slack_bot_token:
            return _fail("--post needs SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SLACK_LEADS_CHANNEL")
        rt = await start_runtime(settings, run_worker=False, run_scheduler=False, connect_socket=False)
        failed = 0
        try:
            keys = [(ext, await rt.service.queue_report_now(ws, week)) for ws, ext in workspace_ids]
            deadline = asyncio.get_running_loop().time() + 120
            try:
                await rt.worker.drain(timeout=120)
            except TimeoutError:
                pass  # said below, row by row
            for ext, key in keys:
                row = await _first_outcome(rt.service, key, deadline)
                if row is not None and row.status == "sent" and not row.last_error:
                    print(f"posted the {iso_week(week)} report for {ext}", file=sys.stderr)
                    continue
                failed += 1
                if row is None:
                    print(f"{ext}: the report was not queued", file=sys.stderr)
                elif row.status == "sent":
                    print(f"{ext}: the report was {row.last_error}", file=sys.stderr)
                elif row.status == "dead":
                    print(f"{ext}: the report was not posted: {row.last_error}", file=sys.stderr)
                else:
                    print(
                        f"{ext}: the report is not posted yet ({row.last_error or 'still being sent'}); it stays "
                        "queued and a running bot will send it",
                        file=sys.stderr,
                    )
        finally:
            await rt.close()
        return 1 if failed else 0

    try:
        return asyncio.run(run())
    except (DatabaseProblem, StorageUnavailable) as exc:
        return _database_failed(exc)


async def _first_outcome(service: HandoffService, key: str, deadline: float) -> OutboxItem | None:
    """The report's row once something happened to it. A running bot's worker may have taken the
    row (it is woken too, on PostgreSQL): wait for its attempt rather than say "still being sent"."""
    loop = asyncio.get_running_loop()
    while True:
        row = await service.outbox_row(key)
        if row is None or row.status in ("sent", "dead") or row.last_error or loop.time() >= deadline:
            return row
        await asyncio.sleep(0.2)


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def cmd_queue(args: argparse.Namespace) -> int:
    """Keep a workspace's queues: list, add, change, remove (moving what is open in it)."""

    from handoff.domain import Queue
    from handoff.queues import aliases_problem, clean_aliases, queue_name_problem
    from handoff.service import HandoffService
    from storage.db import DatabaseProblem, StorageUnavailable, open_checked

    settings = _settings()
    setup_logging("WARNING", settings.log_format, settings.secrets())

    async def run() -> int:
        db = await open_checked(settings.database_url, write=args.action != "list", pooler=settings.database_pooler)
        try:
            found = await _workspaces(db, args.workspace)
            if not found:
                print("no such workspace" if args.workspace else "no workspace yet: use the bot once, then add queues")
                return 1
            if len(found) > 1 and args.action != "list":
                print("several workspaces: say which with --workspace (" + ", ".join(r[1] for r in found) + ")")
                return 2
            service = HandoffService(db)
            if args.action == "list":
                for ws, external in found:
                    for q in await service.queues(ws):
                        where = q.escalation_channel or ("the workspace's channel" if q.is_default else "no channel")
                        extra = f" serves {', '.join(q.serves)}" if q.serves else ""
                        print(f"{external}  {q.name}{' (default)' if q.is_default else ''}: cards to {where}{extra}")
                return 0
            ws = int(found[0][0])
            by_name = {q.name.lower(): q for q in await service.queues(ws)}
            current = by_name.get(args.name.strip().lower())
            if args.action == "remove":
                if current is None:
                    return _fail(f"no queue named {args.name!r}", 1)
                target = by_name.get((args.move_to or "").strip().lower())
                moved = await service.remove_queue(ws, current.id, move_to=target.id if target else None, user="cli")
                if moved is None:
                    return _fail(
                        f"{current.name} not removed: it is the default queue, or has open escalations "
                        "and no --move-to queue",
                        1,
                    )
                print(f"removed {current.name}; {moved} open escalation(s) moved to {target.name if target else '-'}")
                return 0
            fields = {
                "escalation_channel": args.channel,
                "leads_channel": args.leads_channel,
                "senior_user_ids": _names(args.seniors) if args.seniors is not None else None,
                "senior_usergroup": args.usergroup,
                "lead_user_ids": _names(args.leads) if args.leads is not None else None,
                "aliases": clean_aliases(args.alias) if args.alias is not None else None,
                "serves": _names(args.serves) if args.serves is not None else None,
                "reminder_minutes": args.reminder_minutes,
                "lead_alert_minutes": args.lead_alert_minutes,
            }
            given = {k: v for k, v in fields.items() if v is not None}
            # The same rules as the admins' form in Slack, which must be able to show and save what is set here.
            if args.action == "add" and (problem := queue_name_problem(args.name)):
                return _fail(f"queue name: {problem}")
            if "aliases" in given and (problem := aliases_problem(given["aliases"])):
                return _fail(f"--alias: {problem}")
            if args.action == "add":
                if current is not None:
                    return _fail(f"a queue named {current.name!r} exists: use `queue edit`", 1)
                added = await service.add_queue(
                    ws, Queue(id=0, workspace_id=ws, name=args.name, is_default=False, **given)
                )
                print(f"added {added.name if added else args.name}")
                return 0
            if current is None:
                return _fail(f"no queue named {args.name!r}", 1)
            from dataclasses import replace

            await service.edit_queue(ws, replace(current, **given))
            print(f"changed {current.name}")
            return 0
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except (DatabaseProblem, StorageUnavailable) as exc:
        return _database_failed(exc)


def cmd_forget(args: argparse.Namespace) -> int:
    """Forget one person (a request to be forgotten): their id and name out of every table, what they
    typed erased, their escalations kept for the figures under a pseudonym."""
    import secrets

    from bot.config import GUID
    from handoff.service import utcnow
    from storage.db import DatabaseProblem, StorageUnavailable, open_checked
    from storage.forget import SLACK_USER, forget

    platform, user = ("slack", args.slack_user) if args.slack_user else ("teams", args.teams_user)
    shape = SLACK_USER if platform == "slack" else GUID
    if not shape.fullmatch(user or ""):
        expected = "a Slack user id such as U0123ABCD" if platform == "slack" else "an Entra object id (a GUID)"
        return _fail(f"--{platform}-user: {user!r} is not {expected}")
    if platform == "teams":
        user = user.lower()
    settings = _settings()
    setup_logging("WARNING", settings.log_format, settings.secrets())

    async def run() -> int:
        from sqlalchemy import select

        from storage.tables import workspaces

        db = await open_checked(settings.database_url, pooler=settings.database_pooler)
        try:
            stmt = select(workspaces.c.id, workspaces.c.external_id).where(workspaces.c.platform == platform)
            if args.workspace:
                stmt = stmt.where(workspaces.c.external_id == args.workspace)
            async with db.read() as conn:
                found = [(int(i), str(e)) for i, e in (await conn.execute(stmt)).all()]
            if not found:
                print(f"no {platform} workspace" + (f" {args.workspace}" if args.workspace else "") + " here")
                return 1 if args.workspace else 0
            pseudonym = f"forgotten-{secrets.token_hex(4)}"
            async with db.write() as conn:
                done = await forget(conn, [i for i, _ in found], [e for _, e in found], user, pseudonym, utcnow())
        finally:
            await db.dispose()
        where = ", ".join(e for _, e in found)
        if not done:
            print(f"nothing of {user} in {where}: already forgotten, or never here")
            return 0
        print(f"forgot {user} in {where}; where they were, they are now {pseudonym}:")
        for what, n in sorted(done.items()):
            print(f"  {what}: {n}")
        return 0

    try:
        return asyncio.run(run())
    except (DatabaseProblem, StorageUnavailable) as exc:
        return _database_failed(exc)


def cmd_teams_package(args: argparse.Namespace) -> int:
    from bot.teams.package import build_package

    settings = _settings()
    if not settings.teams_app_id:
        return _fail("TEAMS_APP_ID: missing; set the bot's Microsoft App ID (a GUID) in .env")
    try:
        data = build_package(settings.teams_app_id, developer=args.developer, website=args.website)
    except ValueError as exc:
        return _fail(str(exc).replace("TEAMS_APP_ID must", "TEAMS_APP_ID: must"))
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out}: upload it in Teams (Apps > Manage your apps > Upload an app)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.teams:
        from bot.demo_teams import run_teams_demo

        return asyncio.run(run_teams_demo(verbose=args.verbose))
    from bot.demo import run_demo

    return asyncio.run(run_demo(verbose=args.verbose))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escalation-bot",
        description="Structured, claimable escalations for support teams in Slack and Teams.",
    )
    parser.add_argument("--version", action="version", version=f"escalation-bot {release()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (HTTP on /slack/events, Socket Mode if SLACK_APP_TOKEN is set)")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="don't upgrade the schema first (migrations are a step of their own); refuse one this release can't serve",
    )
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema and backups")
    db.add_argument(
        "action",
        choices=["upgrade", "current", "downgrade", "backup"],
        help="upgrade to the latest schema; show the revision; go back to REVISION (migrations that can be "
        "undone only); back a SQLite database up to FILE while the bot runs",
    )
    db.add_argument("revision", nargs="?", metavar="REVISION|FILE", help="downgrade's revision, backup's file")
    db.set_defaults(func=cmd_db)

    ob = sub.add_parser("outbox", help="messages owed to Slack/Teams: list them, re-send dead ones")
    ob_sub = ob.add_subparsers(dest="action", required=True)
    ob_list = ob_sub.add_parser("list", help="newest first")
    ob_list.add_argument("--dead", action="store_true", help="only messages that gave up")
    ob_list.add_argument("--status", choices=["pending", "sent", "dead"], help="only this status")
    ob_list.add_argument("--limit", type=int, default=50)
    ob_retry = ob_sub.add_parser("retry", help="send these again (after fixing what made them fail)")
    ob_retry.add_argument("ids", nargs="+", type=int, metavar="ID")
    ob_sub.add_parser(
        "recheck",
        help="after restoring a database from a backup: look for each pending message before sending it",
    )
    ob.set_defaults(func=cmd_outbox)

    rep = sub.add_parser("report", help="the leads' weekly report for any past week")
    rep.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: last week)")
    rep.add_argument("--workspace", help="Slack team id / Teams tenant id, or the internal id (default: all)")
    rep.add_argument("--format", choices=["text", "json"], default="text")
    rep.add_argument("--chart", metavar="FILE.png", help="also write the chart")
    rep.add_argument("--post", action="store_true", help="post it to the leads channel now")
    rep.add_argument("--queue", metavar="NAME", help="one queue's report (its name or an alias)")
    rep.set_defaults(func=cmd_report)

    qu = sub.add_parser("queue", help="a workspace's escalation queues: list, add, edit, remove")
    qu_sub = qu.add_subparsers(dest="action", required=True)
    qu_list = qu_sub.add_parser("list", help="every queue, the default first")
    for p in (qu_sub.add_parser("add", help="a new queue"), qu_sub.add_parser("edit", help="change a queue")):
        p.add_argument("name")
        p.add_argument("--channel", help="its escalation channel (id)")
        p.add_argument("--leads-channel", help="its leads' channel (default: the workspace's)")
        p.add_argument("--seniors", help="who may claim: user ids, comma-separated")
        p.add_argument("--usergroup", help="who may claim: a Slack user group id")
        p.add_argument("--leads", help="leads to DM: user ids, comma-separated")
        p.add_argument("--alias", help="words to pick it with, e.g. `bill,payments` for `/escalate bill: …`")
        p.add_argument("--serves", help="channels whose escalations it takes by default, comma-separated ids")
        p.add_argument("--reminder-minutes", type=int, help="remind its seniors after this long unclaimed")
        p.add_argument("--lead-alert-minutes", type=int, help="alert its leads after this long unclaimed")
        p.add_argument("--workspace", help="Slack team id / Teams tenant id (needed when there are several)")
    qu_rm = qu_sub.add_parser("remove", help="remove a queue, moving its open escalations first")
    qu_rm.add_argument("name")
    qu_rm.add_argument("--move-to", help="the queue that takes its open escalations")
    qu_rm.add_argument("--workspace", help="Slack team id / Teams tenant id (needed when there are several)")
    qu_list.add_argument("--workspace", help="only this workspace")
    qu.set_defaults(func=cmd_queue)

    fg = sub.add_parser("forget", help="forget one person: their id, name and words out of every table")
    who = fg.add_mutually_exclusive_group(required=True)
    who.add_argument("--slack-user", metavar="U…", help="a Slack user id")
    who.add_argument("--teams-user", metavar="GUID", help="a Teams user's Entra object id")
    fg.add_argument("--workspace", help="only this Slack team id / Teams tenant id (default: every one)")
    fg.set_defaults(func=cmd_forget)

    tp = sub.add_parser("teams-package", help="the Teams app package (manifest.json and icons) to upload")
    tp.add_argument("--out", default="escalation-bot-teams.zip", metavar="FILE.zip")
    tp.add_argument("--developer", default="Escalation Bot", help="publisher name shown in Teams")
    tp.add_argument("--website", default="https://escalation-bot.example.com", help="your site (privacy, terms)")
    tp.set_defaults(func=cmd_teams_package)

    demo = sub.add_parser("demo", help="the whole flow offline against a fake Slack workspace, in seconds")
    demo.add_argument("--verbose", action="store_true", help="also show the bot's log")
    demo.add_argument("--teams", action="store_true", help="the Teams flow instead, against a fake Bot Connector")
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

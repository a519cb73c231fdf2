"""Backups that restore: SQLite's online backup, and making a restored copy safe to send from.

A backup is a moment of the database. Messages that were still pending then may have gone out
after it (the bot kept running), so a copy that is restored must not send them blind: every
pending row in the copy is marked as tried, and the delivery worker looks for each in Slack before
it posts it again (Teams has no such look-up: a Teams message may be repeated, never lost).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

RESTORED = "restored from a backup: may have gone out after the backup was taken; looked for before it is sent"


class BackupProblem(Exception):
    """One line for the operator."""


@dataclass(frozen=True)
class Backup:
    escalations: int
    pending: int
    size_bytes: int
    taken_at: datetime


def mark_restored(conn: sqlite3.Connection) -> int:
    """Every pending message in a restored database: look before sending it (storage.outbox.recheck
    does the same on any database)."""
    cur = conn.execute("UPDATE outbox SET last_error = ?, leased_until = NULL WHERE status = 'pending'", (RESTORED,))
    return cur.rowcount


def backup_sqlite(source: Path, target: Path) -> Backup:
    """Copy the SQLite database at `source` to `target` with SQLite's online backup API, page by page,
    consistent with the moment it finished though the bot keeps writing, then mark the copy's
    pending messages for a look before they are sent."""
    if not source.exists():
        raise BackupProblem(f"no SQLite database at {source}")
    if target.exists():
        raise BackupProblem(f"{target} exists: give the path of a new file")
    if not target.parent.is_dir():
        raise BackupProblem(f"the folder {target.parent} does not exist")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=15)
    dst = sqlite3.connect(target)
    try:
        # In one step: one read transaction, so the copy is one moment of the database. In WAL mode the
        # bot keeps writing meanwhile (a copy in steps restarts whenever another connection writes).
        src.backup(dst)
        taken = datetime.now(UTC)
        dst.execute("PRAGMA journal_mode=WAL")
        pending = mark_restored(dst)
        escalations = int(dst.execute("SELECT count(*) FROM handoffs").fetchone()[0])
        dst.commit()
    except sqlite3.Error as exc:
        dst.close()
        target.unlink(missing_ok=True)
        raise BackupProblem(f"could not back up {source}: {exc}") from None
    finally:
        src.close()
    dst.close()
    return Backup(escalations=escalations, pending=pending, size_bytes=target.stat().st_size, taken_at=taken)

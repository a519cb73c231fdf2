"""Similar past resolutions at scale: how long the lookup a card makes takes when a workspace
has 100,000 resolved escalations, on SQLite (FTS5) and PostgreSQL (tsvector + GIN).

Seeds one workspace with N resolved escalations written from a support vocabulary (products,
symptoms, errors, customers, fixes) and a second workspace with 10% as many, then times
`HandoffService.similar_resolved` (full-text candidates + the same picking the card uses)
for probe escalations: half re-worded from a seeded problem, half about nothing seeded.

    python bench/similar.py [--n 100000] [--probes 60] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import drop_pg, fresh_pg, percentile
from handoff import similar
from handoff.domain import Draft, Severity
from handoff.service import HandoffService
from storage import migrate, search
from storage.db import Database

PRODUCTS = "checkout invoices billing dashboard exports webhooks sso saml oauth api search reports mobile sync".split()
SYMPTOMS = (
    "times out|returns 502|returns 401|fails silently|is slow|shows stale data|loops on login|crashes on open|"
    "drops events|sends duplicates|rejects the certificate|rounds totals wrong|cannot be reached|hangs at 90%"
).split("|")
CONTEXT = (
    "after the upgrade|for EU customers|since the key rotation|on large accounts|for one user|after the SSO change|"
    "behind their proxy|on Safari only|under load|for accounts migrated last week"
).split("|")
FIXES = (
    "Raised the worker timeout|Rotated the signing secret|Re-uploaded the IdP metadata|Cleared the CDN cache|"
    "Rebuilt the search index|Rolled back the config|Added the proxy to the allow list|Fixed the rounding rule|"
    "Restarted the EU gateway|Re-synced the account"
).split("|")
UNSEEDED = [
    "Dark mode colours wrong in the printer driver",
    "Keyboard shortcuts missing from the kiosk",
    "Font rendering blurry on projector screens",
]
COLS = [
    "id", "workspace_id", "number", "status", "severity", "summary", "details", "tried", "customer",
    "requester_id", "claimed_by", "claimed_at", "resolved_by", "resolution", "resolved_at", "version",
    "idempotency_key", "created_at", "updated_at",
]  # fmt: skip
START = datetime(2025, 11, 24, tzinfo=UTC)
NEXT_NUMBERS = (
    "UPDATE workspaces SET next_number = (SELECT max(number) FROM handoffs h WHERE h.workspace_id = workspaces.id)"
)


def rows(first_id: int, count: int, workspace_id: int, seed: int) -> list[tuple]:  # type: ignore[type-arg]
    rng = random.Random(seed)
    out = []
    for i in range(count):
        hid = first_id + i
        product, symptom, ctx = rng.choice(PRODUCTS), rng.choice(SYMPTOMS), rng.choice(CONTEXT)
        created = START + timedelta(seconds=rng.randrange(365 * 86400))
        resolved = created + timedelta(minutes=rng.randrange(5, 600))
        out.append(
            (
                hid, workspace_id, i + 1, "resolved", f"P{rng.randrange(1, 5)}",
                f"{product.capitalize()} {symptom} {ctx}", f"Error code E{rng.randrange(100, 999)} in the logs",
                "Retried and cleared the cache", f"Customer {rng.randrange(500)}", f"UJUN{rng.randrange(40):02d}",
                f"USEN{rng.randrange(12):02d}", created, f"USEN{rng.randrange(12):02d}",
                f"{rng.choice(FIXES)} for the {product} service.", resolved, 3, f"seed-{hid}", created, resolved,
            )
        )  # fmt: skip
    return out


def _naive(v):  # type: ignore[no-untyped-def]
    return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v


async def seed(db: Database, url: str, n: int) -> None:
    from storage.tables import workspaces

    async with db.write() as conn:
        await conn.execute(
            workspaces.insert(),
            [
                {"id": i, "platform": "slack", "external_id": f"T{i}", "created_at": START, "next_number": 0}
                for i in (1, 2)
            ],
        )
    batches = [(1, n, 1, 1), (n + 1, n // 10, 2, 2)]
    if db.is_postgres:
        u = make_url(url)
        con = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
        for first, count, ws, s in batches:
            await con.copy_records_to_table("handoffs", records=rows(first, count, ws, s), columns=COLS)
        await con.execute(NEXT_NUMBERS)
        await con.execute("SELECT setval('handoffs_id_seq', (SELECT max(id) FROM handoffs))")
        await con.execute("ANALYZE")
        await con.close()
    else:
        path = make_url(url).database
        con = sqlite3.connect(path)
        con.execute("PRAGMA synchronous=OFF")
        for first, count, ws, s in batches:
            con.executemany(
                f"INSERT INTO handoffs ({','.join(COLS)}) VALUES ({','.join('?' * len(COLS))})",
                [tuple(_naive(v) for v in r) for r in rows(first, count, ws, s)],
            )
        con.execute(NEXT_NUMBERS)
        con.execute("INSERT INTO handoffs_fts(handoffs_fts) VALUES ('optimize')")
        con.execute("ANALYZE")
        con.commit()
        con.close()


def probes(count: int) -> list[str]:
    rng = random.Random(99)
    out = []
    for i in range(count):
        if i % 2 == 0:  # a seeded kind of problem, worded differently
            out.append(f"{rng.choice(PRODUCTS)} {rng.choice(SYMPTOMS)} again, {rng.choice(CONTEXT)}")
        else:
            out.append(rng.choice(UNSEEDED) + f" ({i})")
    return out


async def run_backend(kind: str, n: int, count: int, tmp: Path) -> dict[str, float | int | str]:
    if kind == "sqlite":
        url, name = f"sqlite+aiosqlite:///{tmp / 'similar.db'}", None
    else:
        url, name = await fresh_pg("eb_similar")
    db = Database(url)
    try:
        await migrate.upgrade(db)
        t0 = time.perf_counter()
        await seed(db, url, n)
        seeded = time.perf_counter() - t0
        service = HandoffService(db)
        texts = probes(count)
        made = [
            (await service.escalate(1, "UPROBE", Draft(summary=t, severity=Severity.P3, tried=""), key=f"p{i}")).handoff
            for i, t in enumerate(texts)
        ]
        await service.similar_resolved(1, made[0])  # warm caches
        times, found, example, planning = [], 0, "", []
        for h in made:
            t0 = time.perf_counter()
            result = await service.similar_resolved(1, h)
            times.append(time.perf_counter() - t0)
            # The part that runs on the event loop (on SQLite): choosing the words to pair.
            t0 = time.perf_counter()
            async with db.read() as conn:
                await search.plan(conn, 1, similar.query_terms(h.summary, h.details, h.tried))
            planning.append(time.perf_counter() - t0)
            found += bool(result)
            if result and not example:
                example = f"{h.summary!r} -> " + "; ".join(f"ESC-{r['number']} {r['summary']!r}" for r in result)
            assert all(r["id"] <= n for r in result), "a match from another workspace"
        return {
            "seeded": seeded,
            "p50": percentile(times, 50),
            "p99": percentile(times, 99),
            "max": max(times),
            "found": found,
            "example": example,
            "plan_max": max(planning),
        }
    finally:
        await db.dispose()
        if name:
            await drop_pg(name)


async def main(n: int, count: int, only: str | None) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="similar-"))
    print(f"similar resolutions: {n:,} resolved in the workspace (+{n // 10:,} in another), {count} probes")
    print(f"{'database':<12} {'seed':>8} {'p50':>9} {'p99':>9} {'max':>9}  probes with matches")
    met = True
    for kind in ("sqlite", "postgresql"):
        if only and kind != only:
            continue
        r = await run_backend(kind, n, count, tmp)
        print(
            f"{kind:<12} {r['seeded']:7.1f}s {float(r['p50']) * 1000:6.1f} ms {float(r['p99']) * 1000:6.1f} ms "
            f"{float(r['max']) * 1000:6.1f} ms  {r['found']}/{count} (half the probes are about nothing seeded)"
        )
        print(f"  e.g. {r['example']}")
        print(f"  choosing the words to pair (on the event loop on SQLite): max {float(r['plan_max']) * 1000:.1f} ms")
        p99 = float(r["p99"]) * 1000
        met = met and p99 <= 50
        print(
            f"  target: p99 <= 50 ms (it sits on the path to every card): {p99:.1f} ms "
            f"{'MET' if p99 <= 50 else 'NOT MET'}"
        )
    return 0 if met else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    a = parser.parse_args()
    sys.exit(asyncio.run(main(a.n, a.probes, a.only)))

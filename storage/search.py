"""Full-text candidates among a workspace's resolved escalations (migration 0006 builds the index).

SQLite: the FTS5 table `handoffs_fts` (porter stemming), ranked by bm25 with the summary
weighted most. PostgreSQL: the generated `search_vector` column (GIN index), ranked by
ts_rank (summary weighted A, resolution B, the rest C). Both are always filtered on the
workspace in the `handoffs` table itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_COLUMNS = "h.id, h.number, h.summary, h.resolution, h.resolved_by, h.card_url, h.tried, h.details"

_SQLITE = text(
    f"SELECT {_COLUMNS} FROM handoffs_fts JOIN handoffs h ON h.id = handoffs_fts.rowid "
    "WHERE handoffs_fts MATCH :q AND h.workspace_id = :ws AND h.status = 'resolved' AND h.id != :exclude "
    "ORDER BY bm25(handoffs_fts, 4.0, 2.0, 1.0, 1.0) LIMIT :k"
)

_POSTGRES = text(
    f"SELECT {_COLUMNS} FROM handoffs h, to_tsquery('english', :q) q "
    "WHERE h.workspace_id = :ws AND h.status = 'resolved' AND h.search_vector @@ q AND h.id != :exclude "
    # ts_rank, not ts_rank_cd: cover density costs five times as much on a big history.
    "ORDER BY ts_rank(h.search_vector, q) DESC, h.id DESC LIMIT :k"
)


PAIR_TERMS = 12  # at most 66 pairs
# A word found in more resolved escalations than this pairs with nothing: every row a pair matches is
# ranked, and a pair of two everyday words ("large accounts") matches thousands. Such words still
# count when the matches are weighed (handoff/similar.py), and are used when nothing rarer is left.
COMMON = 500
WITHOUT_COMMON_LIMIT = 200


@functools.cache
def _counts_sql(n: int) -> Any:
    """SQLite: the words counted in one statement (PostgreSQL: `count_together`)."""
    one = "(SELECT count(*) FROM (SELECT 1 FROM handoffs_fts WHERE handoffs_fts MATCH :t{i} LIMIT :cap))"
    return text("SELECT " + ", ".join(one.format(i=i) for i in range(n)))


def _quote(pg: bool, term: str) -> str:
    """A term as the index's query syntax takes it (FTS5 wants it in double quotes)."""
    return term if pg else f'"{term}"'


def _pairable(head: list[str], counts: list[int]) -> tuple[list[str], int]:
    """The words of `head` worth pairing, given how often each is found (counted up to COMMON + 1):
    those found at all but not COMMON, or, if fewer than two are, the two rarest found. A word found
    nowhere pairs with nothing (so on a new install, or for words never seen, no search runs).
    Also: how many of the words are found at all."""
    found = sum(1 for n in counts if n > 0)
    rare = [t for t, n in zip(head, counts, strict=True) if 0 < n <= COMMON]
    if len(rare) >= 2:
        return rare, found
    by_rarity = sorted((n, i, t) for i, (t, n) in enumerate(zip(head, counts, strict=True)) if n > 0)
    return [t for _, _, t in sorted(by_rarity[:2], key=lambda c: c[1])], found


@dataclass(frozen=True)
class SearchPlan:
    """What a search for resolved look-alikes will ask the index: the words to pair, and how many
    of the escalation's words the history has at all."""

    head: list[str]
    found: int


def words(terms: list[str]) -> list[str]:
    """The words of `terms` a plan counts: the first PAIR_TERMS + 6, letters and digits only."""
    return list(dict.fromkeys(t for t in terms if t.isalnum()))[: PAIR_TERMS + 6]


async def plan(conn: AsyncConnection, workspace_id: int, terms: list[str]) -> SearchPlan | None:
    """The words of `terms` (of the first PAIR_TERMS; letters and digits only) worth pairing, or
    None when no row can hold two of them (fewer than two found anywhere: a new install, words never
    seen) and no search needs to run. One statement, each word counted up to COMMON + 1: bounded work,
    quick enough for the event loop even on a big history."""
    head = words(terms)
    if len(head) < 2:
        return None
    if conn.dialect.name == "postgresql":
        found = await count_together(conn, [(workspace_id, w) for w in head])
        counts = [found[(workspace_id, w)] for w in head]
    else:
        params: dict[str, Any] = {"cap": COMMON + 1}
        params.update({f"t{i}": _quote(False, t) for i, t in enumerate(head)})
        counts = list((await conn.execute(_counts_sql(len(head)), params)).one())
    return choose(head, counts)


def choose(head: list[str], counts: list[int]) -> SearchPlan | None:
    """The plan for the words `head`, each found `counts` times (see `plan`)."""
    pairable, found = _pairable(head, counts)
    pairable = pairable[:PAIR_TERMS]
    return SearchPlan(pairable, found) if len(pairable) >= 2 else None


# PostgreSQL: the words of many escalations counted in one statement. Each word is a parameter of its
# own, as in the one-card statement, so PostgreSQL sees it when it plans: a common word is read until
# COMMON + 1 are found (~1.5 ms on 100,000 resolved), a rare one through the index. Given as an array
# instead, every word went through the workspace index and the full-text index together: 7 ms each.
# So that a connection prepares a handful of statements, not one per number of words, a group is
# padded to the next of these sizes with a word of no workspace (counted in an instant).
_GROUP_SIZES = (2, 4, 8, 16, 32, 64)
_NO_WORKSPACE = -1


@functools.cache
def _count_together_sql(n: int) -> Any:
    one = (
        "(SELECT count(*) FROM (SELECT 1 FROM handoffs h WHERE h.workspace_id = :w{i} AND h.status = 'resolved' "
        "AND h.search_vector @@ to_tsquery('english', :t{i}) LIMIT :cap) x{i})"
    )
    return text("SELECT " + ", ".join(one.format(i=i) for i in range(n)))


async def count_together(conn: AsyncConnection, pairs: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """PostgreSQL: how often each (workspace, word) is found among the workspace's resolved
    escalations, counted up to COMMON + 1: one statement for up to the largest group size."""
    counts: dict[tuple[int, str], int] = {}
    largest = _GROUP_SIZES[-1]
    for start in range(0, len(pairs), largest):
        group = pairs[start : start + largest]
        n = next(size for size in _GROUP_SIZES if size >= len(group))
        padded = group + [(_NO_WORKSPACE, "x")] * (n - len(group))
        params: dict[str, Any] = {"cap": COMMON + 1}
        for i, (ws, word) in enumerate(padded):
            params[f"w{i}"], params[f"t{i}"] = ws, word
        row = (await conn.execute(_count_together_sql(n), params)).one()
        counts.update(zip(group, row[: len(group)], strict=True))
    return counts


async def resolved_candidates(
    conn: AsyncConnection,
    workspace_id: int,
    planned: SearchPlan,
    *,
    exclude_id: int = 0,
    limit: int = 20,
) -> list[Any]:
    """Resolved escalations of this workspace containing two of the planned words, best first.

    The query is an OR of AND-pairs, so the index, not the ranking, throws away the many rows that
    share one common word (no use to the caller, who wants two in common), which is what keeps
    this fast on a big history.
    """
    pg = conn.dialect.name == "postgresql"
    head = planned.head
    if len(head) < planned.found:
        # The ranking no longer sees some words found in the history (common ones): hand over more
        # candidates, and let the caller's count of shared words (which does see them) choose.
        limit = max(limit, WITHOUT_COMMON_LIMIT)
    AND, OR = (" & ", " | ") if pg else (" AND ", " OR ")
    q = OR.join(f"({_quote(pg, a)}{AND}{_quote(pg, b)})" for i, a in enumerate(head) for b in head[i + 1 :])
    stmt = _POSTGRES if pg else _SQLITE
    result = await conn.execute(stmt, {"q": q, "ws": workspace_id, "exclude": exclude_id, "k": limit})
    return list(result)

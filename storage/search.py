"""Full-text candidates among a workspace's resolved escalations (migration 0006 builds the index).

SQLite: the FTS5 table `handoffs_fts` (porter stemming), ranked by bm25 with the summary
weighted most. PostgreSQL: the generated `search_vector` column (GIN index), ranked by
ts_rank (summary weighted A, resolution B, the rest C). Both are always filtered on the
workspace in the `handoffs` table itself.
"""

from __future__ import annotations

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


async def resolved_candidates(
    conn: AsyncConnection,
    workspace_id: int,
    terms: list[str],
    *,
    exclude_id: int = 0,
    limit: int = 20,
) -> list[Any]:
    """Resolved escalations of this workspace containing two of `terms` (of the first PAIR_TERMS;
    letters and digits only), best first.

    The query is an OR of AND-pairs, so the index, not the ranking, throws away the many rows that
    share one common word (no use to the caller, who wants two in common), which is what keeps
    this fast on a big history.
    """
    head = list(dict.fromkeys(t for t in terms if t.isalnum()))[:PAIR_TERMS]
    if len(head) < 2:
        return []
    pg = conn.dialect.name == "postgresql"
    quote = (lambda t: t) if pg else (lambda t: f'"{t}"')
    AND, OR = (" & ", " | ") if pg else (" AND ", " OR ")
    q = OR.join(f"({quote(a)}{AND}{quote(b)})" for i, a in enumerate(head) for b in head[i + 1 :])
    stmt = _POSTGRES if pg else _SQLITE
    result = await conn.execute(stmt, {"q": q, "ws": workspace_id, "exclude": exclude_id, "k": limit})
    return list(result)

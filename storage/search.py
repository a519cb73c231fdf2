"""Full-text candidates among a workspace's resolved escalations (migration 0006 builds the index).

SQLite: the FTS5 table `handoffs_fts` (porter stemming), ranked by bm25 with the summary
weighted most. PostgreSQL: the generated `search_vector` column (GIN index), ranked by
ts_rank_cd. Both are always filtered on the workspace in the `handoffs` table itself.
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
    "ORDER BY ts_rank_cd(h.search_vector, q) DESC, h.id DESC LIMIT :k"
)


async def resolved_candidates(
    conn: AsyncConnection, workspace_id: int, terms: list[str], *, exclude_id: int = 0, limit: int = 20
) -> list[Any]:
    """Resolved escalations of this workspace matching any of `terms` (letters and digits only), best first."""
    terms = [t for t in terms if t.isalnum()]
    if not terms:
        return []
    if conn.dialect.name == "postgresql":
        stmt, q = _POSTGRES, " | ".join(terms)
    else:
        stmt, q = _SQLITE, " OR ".join(f'"{t}"' for t in terms)
    result = await conn.execute(stmt, {"q": q, "ws": workspace_id, "exclude": exclude_id, "k": limit})
    return list(result)

"""Which past resolutions look like a new escalation.

The database's full-text index (SQLite FTS5, PostgreSQL tsvector) finds and ranks
candidates among a workspace's resolved escalations that contain two of the new one's
words; this module picks those words, then keeps a candidate only when it shares enough
meaningful words with the new escalation to be worth a senior's glance, and orders the
keepers the same way on both databases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_TERMS = 24
MIN_SHARED = 2  # one shared word ("customer", "error") is a coincidence, not a similar problem

STOPWORDS = frozenset(
    """
    a about after again against all also am an and any are as at be because been before being below between both
    but by can cannot could did do does doing down during each few for from further had has have having he her
    here hers him his how i if in into is it its itself just me more most my no nor not now of off on once only
    or other our out over own same she should so some still such than that the their them then there these they
    this those through to too under until up very was we were what when where which while who whom why will with
    would you your yours get got gets getting
    cant can't dont doesnt didnt isnt wont please help someone anyone thanks hi hey tried try trying
    customer customers user users issue issues problem problems since
    """.split()
)

_WORD = re.compile(r"[a-z0-9]+")


def _stem(word: str) -> str:
    """A crude stem, only for counting shared words ("logins" and "login" are one word)."""
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def words(text: str) -> list[str]:
    """Meaningful words in order of first appearance: lower case, no stopwords, no one- or two-letter bits."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(text.lower()):
        if len(w) >= 3 and w not in STOPWORDS:
            seen.setdefault(w, None)
    return list(seen)


def query_terms(summary: str, details: str = "", tried: str = "") -> list[str]:
    """The words to search with: the summary's first, then the details', then what was tried."""
    out: dict[str, None] = {}
    for text in (summary, details, tried):
        for w in words(text):
            out.setdefault(w, None)
    return list(out)[:MAX_TERMS]


@dataclass(frozen=True)
class Match:
    handoff_id: int
    number: int
    summary: str
    resolution: str
    resolved_by: str | None
    url: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.handoff_id,
            "number": self.number,
            "summary": self.summary,
            "resolution": self.resolution,
            "resolved_by": self.resolved_by,
            "url": self.url,
        }


def pick(terms: list[str], candidates: list[Any], limit: int = 3) -> list[Match]:
    """Keep the candidates that share at least MIN_SHARED words with the query, one of them in the
    candidate's summary, best first.

    The score counts shared words, a word shared with the candidate's summary twice; ties
    keep the database's own ranking (candidates arrive best first).
    """
    wanted = {_stem(w) for w in terms}
    kept: list[tuple[int, int, Match]] = []
    for order, c in enumerate(candidates):
        m = c._mapping
        in_summary = {_stem(w) for w in words(m["summary"] or "")}
        elsewhere = {_stem(w) for w in words(" ".join(m[k] or "" for k in ("resolution", "tried", "details")))}
        shared_summary = wanted & in_summary
        shared = wanted & (in_summary | elsewhere)
        if len(shared) < MIN_SHARED or not shared_summary:
            continue  # a similar problem shares words with what the other one was about, not only its fix
        score = len(shared) + len(shared_summary)
        match = Match(
            handoff_id=m["id"],
            number=m["number"],
            summary=m["summary"],
            resolution=m["resolution"] or "",
            resolved_by=m["resolved_by"],
            url=m["card_url"],
        )
        kept.append((-score, order, match))
    kept.sort(key=lambda k: (k[0], k[1]))  # best score first; the database's order breaks ties
    return [k[2] for k in kept[:limit]]

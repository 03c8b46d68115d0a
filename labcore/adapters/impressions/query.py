"""Impressions: what a client actually *showed* a user — serving a post is not seeing it.

A client reports impressions (``POST /impressions``); each one travels on the ``impressions`` topic
as an ``ImpressionLogged`` event, keyed by user, and lands in an OLAP store: Pinot consumes the
topic itself (compose profile), the impressions worker loads it into DuckDB (embedded profile).
Stage 2 of the feed then drops the posts a user has seen in the last 24 hours.

Both OLAP backends answer that question with the same SQL text, built here by ``seen_query``.

Units, decided once:

* on the wire and in DuckDB, ``seen_at`` is epoch seconds as a float (millisecond precision), like
  every other time in ``labcore.domain``;
* Pinot's time column ``seen_at`` is a LONG in whole epoch seconds (``1:SECONDS:EPOCH``, see
  ``compose/pinot/impressions_schema.json``): Pinot truncates the float when it ingests it;
* the query's lower bound is floored to a whole second. For an integer ``n``, ``x >= n`` holds exactly
  when ``floor(x) >= n``, so DuckDB (exact floats) and Pinot (truncated) return the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

# The one query text. Placeholders are qmark (``?``), DuckDB's paramstyle; pinotdb binds
# ``%(name)s`` and gets the same text through ``to_pyformat``. ``seen_query`` appends the optional
# ``post_id IN (...)`` restriction and the LIMIT: Pinot caps a result at 10 rows when none is given.
SEEN_SQL = "SELECT DISTINCT post_id FROM impressions WHERE user_id = ? AND seen_at >= ?"

# Upper bound of an unrestricted answer. The feed always restricts to its candidates, so this only
# bounds what an inspection call (``post_ids=None``) can return.
SEEN_LIMIT = 10_000

# What builds the query: ``seen_query`` below, or a learner's (the ``seen_query`` extension point).
SeenQuery = Callable[[str, float, Sequence[str] | None], tuple[str, list[Any]]]



def seen_query(
    user_id: str, since_epoch: float, post_ids: Sequence[str] | None = None
) -> tuple[str, list[Any]]:
    """The full seen-since query and its parameters, in qmark style.

    ``post_ids`` restricts the answer to those posts (the feed passes its candidates); it must not be
    empty — callers answer an empty restriction with an empty set without asking the store.
    """
    sql = SEEN_SQL
    params: list[Any] = [user_id, math.floor(since_epoch)]
    limit = SEEN_LIMIT
    if post_ids is not None:
        unique = list(dict.fromkeys(post_ids))
        if not unique:
            raise ValueError("an empty post_ids restriction has no query: answer set() instead")
        sql += " AND post_id IN (" + ", ".join("?" * len(unique)) + ")"
        params += unique
        limit = len(unique)
    return sql + " LIMIT ?", [*params, limit]


def to_pyformat(sql: str, params: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """Turn qmark placeholders into pinotdb's ``%(pN)s`` ones, keeping the text otherwise identical.

    Only valid for texts without a literal ``?`` (ours bind every value).
    """
    pieces = sql.split("?")
    if len(pieces) - 1 != len(params):
        raise ValueError(f"{len(pieces) - 1} placeholders but {len(params)} parameters")
    out = [pieces[0]]
    for index, piece in enumerate(pieces[1:]):
        out.append(f"%(p{index})s{piece}")
    return "".join(out), {f"p{index}": value for index, value in enumerate(params)}

"""Reference solution of exercise 04 (the seen-in-24h query: one SQL text, bound parameters)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# Pinot answers 10 rows when a query has no LIMIT; this bounds an unrestricted (inspection) query.
UNRESTRICTED_LIMIT = 10_000


def seen_query(
    user_id: str, since_epoch: float, post_ids: Sequence[str] | None = None
) -> tuple[str, list[Any]]:
    # Pinot stores seen_at in whole seconds (it truncates). For a whole number n, x >= n holds
    # exactly when floor(x) >= n, so flooring the bound makes DuckDB and Pinot return the same rows.
    sql = "SELECT DISTINCT post_id FROM impressions WHERE user_id = ? AND seen_at >= ?"
    params: list[Any] = [user_id, math.floor(since_epoch)]
    limit = UNRESTRICTED_LIMIT
    if post_ids is not None:
        unique = list(dict.fromkeys(post_ids))
        if not unique:
            raise ValueError("an empty post_ids restriction has no query: answer set() without asking")
        sql += " AND post_id IN (" + ", ".join("?" * len(unique)) + ")"
        params += unique
        limit = len(unique)  # never more rows than candidates
    return sql + " LIMIT ?", [*params, limit]

"""Exercise 04 — the "seen in the last 24 h" query. The task: README.md next to this file.

Run the tests:   feedlab grade 04          (or: pytest exercises/04_impression_filter)
Plug it in:      FEEDLAB_SEEN_QUERY=exercises.04_impression_filter.starter:seen_query
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def seen_query(
    user_id: str, since_epoch: float, post_ids: Sequence[str] | None = None
) -> tuple[str, list[Any]]:
    """The SQL text and its parameters (qmark ``?`` placeholders) for: the distinct ``post_id`` s that
    ``user_id`` has seen at or after ``since_epoch``, restricted to ``post_ids`` when given.

    Runs unchanged on DuckDB (embedded) and Pinot (compose), over the table
    ``impressions(user_id VARCHAR, post_id VARCHAR, seen_at DOUBLE epoch seconds)``.
    """
    raise NotImplementedError(
        "exercise 04: implement seen_query(user_id, since_epoch, post_ids) in "
        "exercises/04_impression_filter/starter.py — return (sql, params) with every value bound as ?"
    )

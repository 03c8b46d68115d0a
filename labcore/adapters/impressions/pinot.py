"""Impressions in Apache Pinot: the compose profile's OLAP store, queried through pinotdb.

Pinot loads the data itself: the real-time table ``impressions`` consumes the Kafka topic
``impressions`` (``compose/pinot/impressions_realtime_table.json``), so this adapter only asks.

It runs the same SQL text as DuckDB (``labcore.adapters.impressions.query.seen_query``). pinotdb's paramstyle is
``pyformat`` with a dict: it replaces ``%(name)s`` with the value quoted on the client (strings in
single quotes, ``'`` doubled), so ``to_pyformat`` renames the ``?`` placeholders and every value is
bound by pinotdb, never formatted into the text by us.

One pinotdb quirk: it leaves the string ``"*"`` unquoted (so ``COUNT(%(col)s)`` can take ``*``).
Bound as a user or post id that would break the query, so ``"*"`` is answered here as what it is in
this lab — no id at all (ids are UUIDs).

Timeouts are short on purpose: when Pinot is slow the feed must fall back to the Redis set within
the request, so both the HTTP client and the broker (``timeoutMs``) give up after ``timeout_seconds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from pinotdb import connect
from pinotdb import exceptions as pinot_errors

from labcore.adapters.impressions.base import ImpressionStore
from labcore.adapters.impressions.query import SeenQuery, seen_query, to_pyformat
from labcore.errors import BackendUnavailable

UNBINDABLE = "*"  # pinotdb inlines it unquoted; see the module docstring


class PinotImpressions(ImpressionStore):
    def __init__(
        self,
        broker_url: str,
        *,
        timeout_seconds: float = 1.0,
        session: httpx.Client | None = None,
        query: SeenQuery = seen_query,
    ) -> None:
        """``broker_url`` like ``http://pinot-broker:8099``; ``session`` lets tests mock HTTP;
        ``query`` builds the seen-since SQL (the ``seen_query`` extension point)."""
        self.query = query
        parts = urlsplit(broker_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a Pinot broker URL: {broker_url!r}")
        self.broker_url = broker_url
        self.timeout = timeout_seconds
        kwargs: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or (443 if parts.scheme == "https" else 8099),
            "scheme": parts.scheme,
            "path": "/query/sql",
            "timeout": timeout_seconds,
        }
        if session is not None:
            kwargs["session"] = session
        self._conn = connect(**kwargs)

    def seen_since(
        self, user_id: str, since_epoch: float, post_ids: Sequence[str] | None = None
    ) -> set[str]:
        if user_id == UNBINDABLE:
            return set()
        if post_ids is not None:
            post_ids = [post_id for post_id in post_ids if post_id != UNBINDABLE]
            if not post_ids:
                return set()
        rows = self._query(*self.query(user_id, since_epoch, post_ids))
        return {str(row[0]) for row in rows}

    def health(self) -> None:
        # Through the query path, so a missing table counts as unhealthy too.
        self._query("SELECT COUNT(*) FROM impressions", [])

    def close(self) -> None:
        try:
            self._conn.close()
        except pinot_errors.Error:
            pass  # already closed

    def _query(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        text, named = to_pyformat(sql, params)
        try:
            cursor = self._conn.cursor()
            cursor.execute(text, named, queryOptions=f"timeoutMs={int(self.timeout * 1000)}")
            return cursor.fetchall()
        except (pinot_errors.Error, httpx.HTTPError) as exc:
            raise BackendUnavailable("olap", f"Pinot at {self.broker_url}: {exc}") from exc

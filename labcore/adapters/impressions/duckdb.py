"""Impressions in a DuckDB file: the embedded profile's OLAP store.

One process owns the file — the runtime: DuckDB locks a database file against other processes, so
notebooks read impressions through the API, never by opening the file.

Inside that process the API threads query while the impressions worker inserts. A DuckDB connection
is not thread-safe; DuckDB's documented model is one connection per database and a ``cursor()`` —
a connection of its own to the same database — per thread. Each call here takes a fresh cursor
(about 0.2 ms) and closes it, so concurrent readers and the writer never share one, and no cursor
outlives the call (a cursor per thread would pile up as thread pools replace their threads).

Rows are keyed by ``(user_id, post_id, seen_at)`` and inserted with ``INSERT OR IGNORE``: an event
the log redelivers is stored once, so "seen" counts never inflate under at-least-once delivery.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from labcore.adapters.impressions.base import ImpressionStore
from labcore.adapters.impressions.query import SeenQuery, seen_query
from labcore.domain import ImpressionLogged
from labcore.errors import BackendUnavailable

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS impressions (
    user_id VARCHAR NOT NULL,
    post_id VARCHAR NOT NULL,
    seen_at DOUBLE NOT NULL,  -- epoch seconds
    PRIMARY KEY (user_id, post_id, seen_at)
)
"""

# Rows per INSERT statement. A multi-row VALUES is one statement (DuckDB's executemany runs one
# statement per row: 500 rows took 0.8 s against 13 ms); 1000 rows keep it to 3000 parameters.
INSERT_CHUNK = 1000


class DuckdbImpressions(ImpressionStore):
    def __init__(self, path: Path | str, *, query: SeenQuery = seen_query) -> None:
        """``query`` builds the seen-since SQL (the ``seen_query`` extension point)."""
        self.path = str(path)  # ":memory:" works too (tests)
        self.query = query
        self._lock = threading.Lock()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------
    def ensure_table(self) -> None:
        """Open the file (creating its folder) and the table; the runtime calls this at start-up."""
        with self._cursor():
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for this call, with DuckDB errors translated."""
        try:
            with self._lock:
                if self._closed:
                    raise BackendUnavailable("olap", f"DuckDB store {self.path} is closed")
                if self._conn is None:
                    self._conn = self._open()
                cursor = self._conn.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        except duckdb.Error as exc:
            raise BackendUnavailable("olap", f"DuckDB {self.path}: {exc}") from exc

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BackendUnavailable("olap", f"DuckDB {self.path}: {exc}") from exc
        conn = duckdb.connect(self.path)
        try:
            conn.execute(CREATE_TABLE)
        except duckdb.Error:
            conn.close()
            raise
        return conn

    # --- the port ----------------------------------------------------------------------------
    def seen_since(
        self, user_id: str, since_epoch: float, post_ids: Sequence[str] | None = None
    ) -> set[str]:
        if post_ids is not None and not post_ids:
            return set()
        sql, params = self.query(user_id, since_epoch, post_ids)
        with self._cursor() as cursor:
            rows = cursor.execute(sql, params).fetchall()
        return {post_id for (post_id,) in rows}

    def health(self) -> None:
        with self._cursor() as cursor:
            cursor.execute("SELECT 1").fetchall()

    # --- loading (the impressions worker) and inspection (notebooks) ----------------------------
    def insert(self, impressions: Sequence[ImpressionLogged]) -> int:
        """Store impressions; returns how many were new (a replayed impression is not)."""
        rows = list(dict.fromkeys((i.user_id, i.post_id, float(i.seen_at)) for i in impressions))
        inserted = 0
        with self._cursor() as cursor:
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start : start + INSERT_CHUNK]
                values = ", ".join(["(?, ?, ?)"] * len(chunk))
                result = cursor.execute(
                    f"INSERT OR IGNORE INTO impressions VALUES {values}",  # placeholders only
                    [value for row in chunk for value in row],
                ).fetchone()
                inserted += int(result[0]) if result else 0
        return inserted

    def count(self) -> int:
        with self._cursor() as cursor:
            row = cursor.execute("SELECT count(*) FROM impressions").fetchone()
        return int(row[0]) if row else 0

    def recent(self, limit: int = 20) -> list[ImpressionLogged]:
        """The newest ``limit`` impressions, newest first."""
        with self._cursor() as cursor:
            rows = cursor.execute(
                "SELECT user_id, post_id, seen_at FROM impressions "
                "ORDER BY seen_at DESC, user_id, post_id LIMIT ?",
                [limit],
            ).fetchall()
        return [ImpressionLogged(user_id, post_id, seen_at) for user_id, post_id, seen_at in rows]

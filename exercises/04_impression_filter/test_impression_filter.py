"""Exercise 04: the seen-since query, run on a real DuckDB (in memory) over the impressions table."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import duckdb
import pytest

from labcore.adapters.impressions.duckdb import CREATE_TABLE


@pytest.fixture
def olap() -> Iterator[duckdb.DuckDBPyConnection]:
    conn = duckdb.connect(":memory:")
    conn.execute(CREATE_TABLE)
    conn.executemany(
        "INSERT INTO impressions VALUES (?, ?, ?)",
        [
            ("u1", "p1", 1_000.0),
            ("u1", "p2", 2_000.0),
            ("u1", "p3", 3_000.0),
            ("u2", "p4", 3_000.0),
        ],
    )
    yield conn
    conn.close()


def seen(exercise, olap: duckdb.DuckDBPyConnection, user: str, since: float, post_ids: Sequence[str] | None = None) -> set[str]:
    sql, params = exercise.seen_query(user, since, post_ids)
    return {row[0] for row in olap.execute(sql, params).fetchall()}


@pytest.mark.points(3)
def test_posts_seen_since_the_bound_inclusive(exercise, olap) -> None:
    assert seen(exercise, olap, "u1", 2_000.0) == {"p2", "p3"}


@pytest.mark.points(2)
def test_only_this_users_impressions(exercise, olap) -> None:
    assert seen(exercise, olap, "u2", 0.0) == {"p4"}
    assert seen(exercise, olap, "nobody", 0.0) == set()


@pytest.mark.points(3)
def test_restricted_to_the_candidates(exercise, olap) -> None:
    assert seen(exercise, olap, "u1", 0.0, ["p1", "p3", "p9"]) == {"p1", "p3"}


@pytest.mark.points(2)
def test_every_value_is_a_bound_parameter(exercise) -> None:
    sql, params = exercise.seen_query("user-42", 1_000.0, ["post-7", "post-8"])
    assert "user-42" not in sql and "post-7" not in sql, "ids go in the parameters, never in the SQL text"
    assert sql.count("?") == len(params), "one ? per parameter"

"""Exercise 04, hidden tests: injection, the whole-second bound, DISTINCT, LIMIT, edge cases."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from labcore.adapters.impressions.duckdb import CREATE_TABLE
from labcore.adapters.impressions.query import to_pyformat


@pytest.fixture
def olap() -> Iterator[duckdb.DuckDBPyConnection]:
    conn = duckdb.connect(":memory:")
    conn.execute(CREATE_TABLE)
    yield conn
    conn.close()


def rows(exercise, olap, user, since, post_ids=None) -> list[str]:
    sql, params = exercise.seen_query(user, since, post_ids)
    return [row[0] for row in olap.execute(sql, params).fetchall()]


@pytest.mark.points(2)
def test_an_injection_attempt_is_just_an_odd_user_id(exercise, olap) -> None:
    olap.execute("INSERT INTO impressions VALUES ('u1', 'p1', 1000.0)")
    assert rows(exercise, olap, "u1' OR '1'='1", 0.0) == []
    assert rows(exercise, olap, "u1", 0.0, ["p1') OR ('1'='1"]) == []


@pytest.mark.points(2)
def test_the_bound_is_floored_to_a_whole_second(exercise, olap) -> None:
    """Pinot keeps whole seconds: 1999.5 is stored as 1999. Floor the bound so both stores agree."""
    olap.execute("INSERT INTO impressions VALUES ('u1', 'p1', 1999.5)")
    assert rows(exercise, olap, "u1", 1999.7) == ["p1"]
    assert rows(exercise, olap, "u1", 2000.0) == []


@pytest.mark.points(1)
def test_a_post_seen_twice_comes_back_once(exercise, olap) -> None:
    olap.execute("INSERT INTO impressions VALUES ('u1', 'p1', 1000.0), ('u1', 'p1', 2000.0)")
    assert rows(exercise, olap, "u1", 0.0) == ["p1"]
    assert rows(exercise, olap, "u1", 0.0, ["p1", "p1"]) == ["p1"]


@pytest.mark.points(1)
def test_there_is_a_limit_and_it_is_big_enough(exercise, olap) -> None:
    """Pinot returns 10 rows when a query has no LIMIT."""
    olap.executemany("INSERT INTO impressions VALUES ('u1', ?, 1000.0)", [[f"p{i}"] for i in range(25)])
    sql, _ = exercise.seen_query("u1", 0.0, None)
    assert "LIMIT" in sql.upper()
    assert len(rows(exercise, olap, "u1", 0.0)) == 25
    assert len(rows(exercise, olap, "u1", 0.0, [f"p{i}" for i in range(20)])) == 20


@pytest.mark.points(1)
def test_an_empty_restriction_is_refused(exercise) -> None:
    with pytest.raises(ValueError):
        exercise.seen_query("u1", 0.0, [])


@pytest.mark.points(1)
def test_the_same_text_binds_for_pinot(exercise) -> None:
    sql, params = exercise.seen_query("u1", 1_000.0, ["p1", "p2"])
    text, named = to_pyformat(sql, params)  # pinotdb's %(name)s style, same text otherwise
    assert len(named) == len(params) and "?" not in text

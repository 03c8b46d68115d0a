"""record_impressions (the API's write) and ImpressionHandler (the DuckDB loader), without servers."""

from __future__ import annotations

from typing import Any

import pytest

from labcore.adapters.impressions.duckdb import DuckdbImpressions
from labcore.domain import TOPIC_IMPRESSIONS, ImpressionLogged, Record
from labcore.errors import BackendUnavailable, InvalidInput
from labcore.testing import MemoryEventLog, MemoryImpressions
from labcore.workers.impressions import ImpressionHandler
from labcore.write.impressions import MAX_IMPRESSIONS_PER_REQUEST, record_impressions

NOW = 1_700_000_000.1234


def published(events: MemoryEventLog) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r.topic, r.key, r.value) for r in events.tail(TOPIC_IMPRESSIONS, 10_000)]


@pytest.fixture
def events() -> MemoryEventLog:
    return MemoryEventLog()


@pytest.fixture
def recent() -> MemoryImpressions:
    """Stands in for RedisRecentImpressions (``record``)."""
    return MemoryImpressions()


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_id", "post_ids", "reason"),
    [
        ("bob", [], "must not be empty"),
        ("bob", [f"p{i}" for i in range(MAX_IMPRESSIONS_PER_REQUEST + 1)], "at most 500"),
        ("bob", ["p1", ""], "bad at index 1"),
        ("bob", ["p1", "   "], "bad at index 1"),
        ("bob", ["p1", None, 7], "bad at index 1, 2"),
        ("bob", "p1", "must be a list"),
        ("bob", None, "must be a list"),
        ("", ["p1"], "user_id must be a non-empty string"),
        (None, ["p1"], "user_id must be a non-empty string"),
    ],
    ids=[
        "empty", "too-many", "empty-id", "blank-id", "non-string-ids",
        "string", "none", "no-user", "none-user",
    ],  # fmt: skip
)
def test_invalid_reports_are_refused_with_a_reason(
    events: MemoryEventLog, recent: MemoryImpressions, user_id: Any, post_ids: Any, reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason):
        record_impressions(events, recent, user_id, post_ids, now=NOW)
    assert published(events) == [] and recent.rows == []


def test_every_reason_is_reported_at_once(events: MemoryEventLog, recent: MemoryImpressions) -> None:
    with pytest.raises(InvalidInput) as caught:
        record_impressions(events, recent, "", ["p1", ""], now=NOW)
    assert "user_id" in str(caught.value) and "bad at index 1" in str(caught.value)


def test_the_limit_itself_is_accepted(events: MemoryEventLog, recent: MemoryImpressions) -> None:
    post_ids = [f"p{i}" for i in range(MAX_IMPRESSIONS_PER_REQUEST)]
    assert record_impressions(events, recent, "bob", post_ids, now=NOW) == MAX_IMPRESSIONS_PER_REQUEST


# --- what gets written, in which order ------------------------------------------------------------


def test_one_event_per_distinct_post_keyed_by_user(events: MemoryEventLog, recent: MemoryImpressions) -> None:
    assert record_impressions(events, recent, "bob", ["p1", "p2", "p1"], now=NOW) == 2
    seen_at = round(NOW, 3)
    assert published(events) == [
        (TOPIC_IMPRESSIONS, "bob", {"user_id": "bob", "post_id": "p1", "seen_at": seen_at}),
        (TOPIC_IMPRESSIONS, "bob", {"user_id": "bob", "post_id": "p2", "seen_at": seen_at}),
    ]
    assert recent.rows == [ImpressionLogged("bob", "p1", seen_at), ImpressionLogged("bob", "p2", seen_at)]


def test_without_now_the_clock_is_used(events: MemoryEventLog, recent: MemoryImpressions) -> None:
    import time

    before = time.time()
    record_impressions(events, recent, "bob", ["p1"])
    assert before - 0.001 <= published(events)[0][2]["seen_at"] <= time.time() + 0.001


def test_redis_is_written_before_anything_is_published_and_a_down_log_is_not_silent(
    events: MemoryEventLog, recent: MemoryImpressions
) -> None:
    events.down = True  # the broker is gone: the fallback must already have every impression
    with pytest.raises(BackendUnavailable, match="event-log"):
        record_impressions(events, recent, "bob", ["p1", "p2"], now=NOW)
    assert [i.post_id for i in recent.rows] == ["p1", "p2"]


def test_a_down_redis_still_publishes(events: MemoryEventLog) -> None:
    recent = MemoryImpressions(down=True)
    assert record_impressions(events, recent, "bob", ["p1", "p2"], now=NOW) == 2
    assert [value["post_id"] for _, _, value in published(events)] == ["p1", "p2"]


# --- the loader --------------------------------------------------------------------------------


def record(value: Any, offset: int = 0) -> Record:
    return Record(TOPIC_IMPRESSIONS, 0, str(offset), "bob", value)


def test_handler_inserts_a_batch_in_one_call() -> None:
    olap = MemoryImpressions()
    handler = ImpressionHandler(olap)
    handler([record({"user_id": "bob", "post_id": f"p{i}", "seen_at": 1.0 + i}, i) for i in range(3)])
    assert olap.batches == [[ImpressionLogged("bob", f"p{i}", 1.0 + i) for i in range(3)]]
    assert (handler.impressions, handler.inserted, handler.skipped) == (3, 3, 0)


@pytest.mark.parametrize(
    "value",
    [
        {"user_id": "bob", "post_id": "p1"},  # no seen_at
        {"user_id": "bob", "post_id": "", "seen_at": 1.0},
        {"user_id": 7, "post_id": "p1", "seen_at": 1.0},
        {"user_id": "bob", "post_id": "p1", "seen_at": "yesterday"},
        {"user_id": "bob", "post_id": "p1", "seen_at": True},
        None,
        ["bob", "p1", 1.0],
    ],
)
def test_handler_skips_a_malformed_record_and_keeps_the_rest(value: Any) -> None:
    olap = MemoryImpressions()
    handler = ImpressionHandler(olap)
    handler([record(value, 0), record({"user_id": "bob", "post_id": "p2", "seen_at": 2}, 1)])
    assert olap.batches == [[ImpressionLogged("bob", "p2", 2)]]
    assert handler.skipped == 1


def test_handler_of_only_malformed_records_inserts_nothing() -> None:
    olap = MemoryImpressions()
    ImpressionHandler(olap)([record({"bogus": 1})])
    assert olap.batches == []


def test_handler_over_duckdb_counts_a_redelivered_batch_once() -> None:
    olap = DuckdbImpressions(":memory:")
    handler = ImpressionHandler(olap)
    batch = [record({"user_id": "bob", "post_id": f"p{i}", "seen_at": 10.0}, i) for i in range(4)]
    handler(batch)
    handler(batch)  # the log redelivers: nothing was acked
    assert (handler.impressions, handler.inserted) == (8, 4)
    assert olap.count() == 4
    assert olap.seen_since("bob", 10.0, ["p0", "p9"]) == {"p0"}
    olap.close()


def test_handler_lets_a_down_store_fail_the_batch() -> None:
    olap = DuckdbImpressions(":memory:")
    olap.close()
    with pytest.raises(BackendUnavailable, match="olap"):  # ConsumerLoop backs off, acks nothing
        ImpressionHandler(olap)([record({"user_id": "bob", "post_id": "p1", "seen_at": 1.0})])

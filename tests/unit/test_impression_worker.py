"""record_impressions (the API's write) and ImpressionHandler (the DuckDB loader), without servers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from labcore.adapters.events.base import EventLog, Subscription
from labcore.adapters.impressions.duckdb import DuckdbImpressions
from labcore.domain import TOPIC_IMPRESSIONS, ImpressionLogged, Record
from labcore.errors import BackendUnavailable, InvalidInput
from labcore.workers.impressions import ImpressionHandler
from labcore.write.impressions import MAX_IMPRESSIONS_PER_REQUEST, record_impressions

NOW = 1_700_000_000.1234


class FakeEventLog(EventLog):
    """Publishes into a list, or fails like a down log after ``fail_after`` publishes."""

    def __init__(self, calls: list[str], fail_after: int | None = None) -> None:
        self.calls = calls
        self.published: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_after = fail_after

    def publish(
        self, topic: str, key: str, value: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        if self.fail_after is not None and len(self.published) >= self.fail_after:
            raise BackendUnavailable("event-log", "broker gone")
        self.calls.append("publish")
        self.published.append((topic, key, value))

    def subscribe(self, topic: str, group: str, consumer: str) -> Subscription:
        raise NotImplementedError

    def tail(self, topic: str, count: int = 10) -> list[Record]:
        raise NotImplementedError

    def backlog(self, topic: str, group: str) -> int:
        raise NotImplementedError

    def health(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeRecent:
    """Stands in for RedisRecentImpressions.record."""

    def __init__(self, calls: list[str], down: bool = False) -> None:
        self.calls = calls
        self.down = down
        self.recorded: list[ImpressionLogged] = []

    def record(self, impressions: Sequence[ImpressionLogged], now: float | None = None) -> None:
        if self.down:
            raise BackendUnavailable("redis", "connection refused")
        self.calls.append("record")
        self.recorded.extend(impressions)


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def events(calls: list[str]) -> FakeEventLog:
    return FakeEventLog(calls)


@pytest.fixture
def recent(calls: list[str]) -> FakeRecent:
    return FakeRecent(calls)


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
    events: FakeEventLog, recent: FakeRecent, user_id: Any, post_ids: Any, reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason):
        record_impressions(events, recent, user_id, post_ids, now=NOW)
    assert events.published == [] and recent.recorded == []


def test_every_reason_is_reported_at_once(events: FakeEventLog, recent: FakeRecent) -> None:
    with pytest.raises(InvalidInput) as caught:
        record_impressions(events, recent, "", ["p1", ""], now=NOW)
    assert "user_id" in str(caught.value) and "bad at index 1" in str(caught.value)


def test_the_limit_itself_is_accepted(events: FakeEventLog, recent: FakeRecent) -> None:
    post_ids = [f"p{i}" for i in range(MAX_IMPRESSIONS_PER_REQUEST)]
    assert record_impressions(events, recent, "bob", post_ids, now=NOW) == MAX_IMPRESSIONS_PER_REQUEST


# --- what gets written, in which order ------------------------------------------------------------


def test_one_event_per_distinct_post_keyed_by_user(events: FakeEventLog, recent: FakeRecent) -> None:
    assert record_impressions(events, recent, "bob", ["p1", "p2", "p1"], now=NOW) == 2
    seen_at = round(NOW, 3)
    assert events.published == [
        (TOPIC_IMPRESSIONS, "bob", {"user_id": "bob", "post_id": "p1", "seen_at": seen_at}),
        (TOPIC_IMPRESSIONS, "bob", {"user_id": "bob", "post_id": "p2", "seen_at": seen_at}),
    ]
    assert recent.recorded == [ImpressionLogged("bob", "p1", seen_at), ImpressionLogged("bob", "p2", seen_at)]


def test_redis_is_written_before_anything_is_published(
    calls: list[str], events: FakeEventLog, recent: FakeRecent
) -> None:
    record_impressions(events, recent, "bob", ["p1", "p2"], now=NOW)
    assert calls == ["record", "publish", "publish"]


def test_without_now_the_clock_is_used(events: FakeEventLog, recent: FakeRecent) -> None:
    import time

    before = time.time()
    record_impressions(events, recent, "bob", ["p1"])
    assert before - 0.001 <= events.published[0][2]["seen_at"] <= time.time() + 0.001


def test_a_down_event_log_is_not_silent(calls: list[str], recent: FakeRecent) -> None:
    events = FakeEventLog(calls, fail_after=1)  # the broker goes away mid-request
    with pytest.raises(BackendUnavailable, match="event-log"):
        record_impressions(events, recent, "bob", ["p1", "p2"], now=NOW)
    assert [i.post_id for i in recent.recorded] == ["p1", "p2"]  # the fallback has them all


def test_a_down_redis_still_publishes(calls: list[str], events: FakeEventLog) -> None:
    recent = FakeRecent(calls, down=True)
    assert record_impressions(events, recent, "bob", ["p1", "p2"], now=NOW) == 2
    assert [value["post_id"] for _, _, value in events.published] == ["p1", "p2"]


# --- the loader --------------------------------------------------------------------------------


class FakeOlap:
    def __init__(self) -> None:
        self.batches: list[list[ImpressionLogged]] = []

    def insert(self, impressions: Sequence[ImpressionLogged]) -> int:
        self.batches.append(list(impressions))
        return len(impressions)


def record(value: Any, offset: int = 0) -> Record:
    return Record(TOPIC_IMPRESSIONS, 0, str(offset), "bob", value)


def test_handler_inserts_a_batch_in_one_call() -> None:
    olap = FakeOlap()
    handler = ImpressionHandler(olap)  # type: ignore[arg-type]
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
    olap = FakeOlap()
    handler = ImpressionHandler(olap)  # type: ignore[arg-type]
    handler([record(value, 0), record({"user_id": "bob", "post_id": "p2", "seen_at": 2}, 1)])
    assert olap.batches == [[ImpressionLogged("bob", "p2", 2)]]
    assert handler.skipped == 1


def test_handler_of_only_malformed_records_inserts_nothing() -> None:
    olap = FakeOlap()
    ImpressionHandler(olap)([record({"bogus": 1})])  # type: ignore[arg-type]
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

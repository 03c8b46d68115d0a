"""One contract for every ImpressionStore: DuckDB (a file), the Redis fallback (both Redis servers),
Pinot when reachable, and the in-memory fake of ``labcore.testing``.

Pinot runs against ``FEEDLAB_TEST_PINOT_URL`` when it and ``FEEDLAB_TEST_KAFKA_BOOTSTRAP`` are set (the
compose stack: a broker whose ``impressions`` table consumes that Kafka), else against the session's
real Pinot and Kafka engines (``labcore.engines``, the same table config); impressions are
loaded the way production loads them — published on the topic — and awaited until Pinot serves them.
DuckDB, Pinot and the fake need no Redis, so like Kafka in the event-log contract they run once, under the
``embedded`` id. Every test uses fresh user ids, so a shared Pinot table does not leak between tests.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from labcore.adapters.impressions.base import ImpressionStore
from labcore.adapters.impressions.duckdb import DuckdbImpressions
from labcore.adapters.impressions.redis_recent import RedisRecentImpressions, seen_key
from labcore.domain import ImpressionLogged
from labcore.engines.process import free_port
from labcore.errors import BackendUnavailable
from labcore.testing import MemoryImpressions
from tests.conftest import _unreachable as unreachable
from tests.helpers import once_across_redis_servers, wait_for

PINOT_URL = os.environ.get("FEEDLAB_TEST_PINOT_URL")
KAFKA_BOOTSTRAP = os.environ.get("FEEDLAB_TEST_KAFKA_BOOTSTRAP")
HOUR = 3600.0
WINDOW = 24 * HOUR
INJECTION = "x' OR '1'='1"


@dataclass
class Backend:
    store: ImpressionStore
    load: Callable[[Sequence[ImpressionLogged]], None]  # how this backend's impressions get in
    close: Callable[[], None] = lambda: None


def duckdb_backend(path: Path) -> Backend:
    store = DuckdbImpressions(path)
    store.ensure_table()
    return Backend(store, store.insert, store.close)


def redis_backend(url: str) -> Backend:
    client = redis.Redis.from_url(url, decode_responses=True)
    store = RedisRecentImpressions(client, cap=100, window_seconds=WINDOW)
    return Backend(store, store.record, client.close)


def pinot_backend(broker_url: str, bootstrap: str) -> Backend:
    from labcore.adapters.events.kafka import KafkaEventLog
    from labcore.adapters.impressions.pinot import PinotImpressions

    store = PinotImpressions(broker_url, timeout_seconds=5)
    store.health()  # raises BackendUnavailable: the caller skips
    events = KafkaEventLog(bootstrap, partitions=4, bootstrap_timeout_ms=5000)

    def load(impressions: Sequence[ImpressionLogged]) -> None:
        for impression in impressions:
            events.publish(impression.topic, impression.key, impression.to_dict())
        expected: dict[str, set[str]] = {}
        for impression in impressions:
            expected.setdefault(impression.user_id, set()).add(impression.post_id)
        wait_for(
            lambda: all(posts <= store.seen_since(user, 0) for user, posts in expected.items()),
            "Pinot serves the published impressions", timeout=30,
        )  # fmt: skip

    def close() -> None:
        events.close()
        store.close()

    return Backend(store, load, close)


def memory_backend() -> Backend:
    store = MemoryImpressions()
    return Backend(store, store.insert)


@pytest.fixture(params=["duckdb", "redis-recent", "pinot", "memory"])
def backend(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "redis-recent":
        chosen = redis_backend(redis_url)
    else:
        once_across_redis_servers(request, request.param)
        if request.param == "duckdb":
            chosen = duckdb_backend(tmp_path / "olap" / "impressions.duckdb")
        elif request.param == "memory":
            chosen = memory_backend()
        else:
            if PINOT_URL and KAFKA_BOOTSTRAP:  # the compose stack
                broker_url, bootstrap = PINOT_URL, KAFKA_BOOTSTRAP
            else:  # the session's Pinot engine, consuming the session's Kafka engine
                engines = request.getfixturevalue("engines")
                broker_url, bootstrap = engines.get("pinot").broker_url, engines.get("kafka").bootstrap
            try:
                chosen = pinot_backend(broker_url, bootstrap)
            except BackendUnavailable as exc:
                unreachable(f"Pinot at {broker_url} or Kafka at {bootstrap}", exc)
    yield chosen
    chosen.close()


@pytest.fixture
def now() -> float:
    # Real time, not a constant: Redis trims to the window before the clock, Pinot retains two days.
    return round(time.time(), 3)


@pytest.fixture
def ids() -> Callable[[str], str]:
    """Fresh ids per test: ``ids("bob")`` is the same within a test, different across tests."""
    suffix = uuid.uuid4().hex[:8]
    return lambda name: f"{name}-{suffix}"


def saw(user: str, post: str, at: float) -> ImpressionLogged:
    return ImpressionLogged(user, post, at)


# --- the window -----------------------------------------------------------------------------


def test_seen_within_the_window_is_returned(backend: Backend, ids, now: float) -> None:
    bob = ids("bob")
    backend.load([saw(bob, ids("p1"), now - HOUR), saw(bob, ids("p2"), now - 23 * HOUR)])
    assert backend.store.seen_since(bob, now - WINDOW) == {ids("p1"), ids("p2")}


def test_seen_before_the_window_is_not(backend: Backend, ids, now: float) -> None:
    bob = ids("bob")
    backend.load([saw(bob, ids("old"), now - 25 * HOUR), saw(bob, ids("new"), now - HOUR)])
    assert backend.store.seen_since(bob, now - WINDOW) == {ids("new")}
    assert backend.store.seen_since(bob, now - WINDOW, [ids("old"), ids("new")]) == {ids("new")}


def test_the_bound_is_floored_to_the_second(backend: Backend, ids, now: float) -> None:
    # Pinot keeps whole seconds; every backend floors the bound so they all draw the same line.
    bob, second = ids("bob"), math.floor(now - HOUR)
    backend.load([saw(bob, ids("in"), second + 0.2), saw(bob, ids("out"), second - 0.2)])
    assert backend.store.seen_since(bob, second + 0.5) == {ids("in")}


# --- whose, and which -----------------------------------------------------------------------


def test_other_users_impressions_are_not_returned(backend: Backend, ids, now: float) -> None:
    bob, alice = ids("bob"), ids("alice")
    backend.load([saw(bob, ids("p1"), now - HOUR), saw(alice, ids("p2"), now - HOUR)])
    assert backend.store.seen_since(bob, now - WINDOW) == {ids("p1")}
    assert backend.store.seen_since(alice, now - WINDOW) == {ids("p2")}
    assert backend.store.seen_since(ids("carol"), now - WINDOW) == set()


def test_post_ids_restrict_the_answer(backend: Backend, ids, now: float) -> None:
    bob = ids("bob")
    backend.load([saw(bob, ids(p), now - HOUR) for p in ("p1", "p2", "p3")])
    candidates = [ids("p1"), ids("p3"), ids("never"), ids("p1")]  # duplicates are fine
    assert backend.store.seen_since(bob, now - WINDOW, candidates) == {ids("p1"), ids("p3")}
    assert backend.store.seen_since(bob, now - WINDOW, [ids("never")]) == set()
    assert backend.store.seen_since(bob, now - WINDOW, []) == set()


def test_replayed_and_repeated_impressions_change_nothing(backend: Backend, ids, now: float) -> None:
    bob = ids("bob")
    batch = [saw(bob, ids("p1"), now - HOUR), saw(bob, ids("p2"), now - 2 * HOUR)]
    backend.load(batch + batch[:1])  # a duplicate inside a batch
    backend.load(batch)  # the log redelivers the whole batch
    backend.load([saw(bob, ids("p1"), now - 3 * HOUR)])  # seen again, at another time
    assert backend.store.seen_since(bob, now - WINDOW) == {ids("p1"), ids("p2")}
    assert backend.store.seen_since(bob, now - 90 * 60) == {ids("p1")}


# --- hostile input --------------------------------------------------------------------------


def test_injection_looking_ids_return_nothing_and_break_nothing(backend: Backend, ids, now: float) -> None:
    bob = ids("bob")
    backend.load([saw(bob, ids("p1"), now - HOUR)])
    assert backend.store.seen_since(INJECTION, 0) == set()
    assert backend.store.seen_since(bob, 0, [f"{ids('p1')}' OR '1'='1"]) == set()
    assert backend.store.seen_since(bob, now - WINDOW) == {ids("p1")}  # the table is intact


def test_hostile_ids_are_stored_and_found_verbatim(backend: Backend, ids, now: float) -> None:
    user, post = ids(INJECTION), ids("p'); DROP TABLE impressions; --")
    backend.load([saw(user, post, now - HOUR), saw(ids("bob"), ids("p1"), now - HOUR)])
    assert backend.store.seen_since(user, now - WINDOW) == {post}
    assert backend.store.seen_since(user, now - WINDOW, [post, ids("p1")]) == {post}
    assert backend.store.seen_since(ids("bob"), now - WINDOW) == {ids("p1")}


# --- down backends ----------------------------------------------------------------------------


def closed_duckdb(tmp_path: Path) -> ImpressionStore:
    store = DuckdbImpressions(tmp_path / "impressions.duckdb")
    store.ensure_table()
    store.close()
    return store


def unopenable_duckdb(tmp_path: Path) -> ImpressionStore:
    (tmp_path / "a-file").write_text("not a folder")
    return DuckdbImpressions(tmp_path / "a-file" / "impressions.duckdb")


def down_redis(tmp_path: Path) -> ImpressionStore:
    from labcore.bootstrap import redis_client

    return RedisRecentImpressions(redis_client(f"redis://127.0.0.1:{free_port()}/0"))


def down_pinot(tmp_path: Path) -> ImpressionStore:
    from labcore.adapters.impressions.pinot import PinotImpressions

    return PinotImpressions(f"http://127.0.0.1:{free_port()}", timeout_seconds=1)


@pytest.mark.parametrize(
    ("make_down", "component"),
    [
        (closed_duckdb, "olap"), (unopenable_duckdb, "olap"), (down_redis, "redis"), (down_pinot, "olap"),
        (lambda tmp_path: MemoryImpressions(down=True), "olap"),
    ],
    ids=["duckdb-closed", "duckdb-unopenable", "redis", "pinot", "memory"],
)
def test_a_down_backend_is_backend_unavailable(make_down, component: str, tmp_path: Path) -> None:
    store = make_down(tmp_path)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        store.seen_since("bob", 0, ["p1"])
    assert caught.value.component == component
    with pytest.raises(BackendUnavailable):
        store.health()
    assert time.monotonic() - started < 10  # fails fast enough for a fallback within a request


# --- DuckDB: loading, inspection, threads ------------------------------------------------------


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckdbImpressions]:
    store = DuckdbImpressions(tmp_path / "impressions.duckdb")
    store.ensure_table()
    yield store
    store.close()


def test_duckdb_insert_counts_only_new_rows(duck: DuckdbImpressions) -> None:
    batch = [saw("bob", "p1", 100.0), saw("bob", "p2", 100.0), saw("bob", "p1", 100.0)]
    assert duck.insert(batch) == 2
    assert duck.insert(batch) == 0  # replayed
    assert duck.insert([saw("bob", "p1", 200.0)]) == 1  # seen again later: a new impression
    assert duck.count() == 3
    assert duck.insert([]) == 0


def test_duckdb_recent_is_newest_first(duck: DuckdbImpressions) -> None:
    duck.insert([saw("bob", f"p{i}", float(i)) for i in range(5)])
    assert duck.recent(2) == [saw("bob", "p4", 4.0), saw("bob", "p3", 3.0)]


def test_duckdb_large_batches_go_in_whole(duck: DuckdbImpressions) -> None:
    batch = [saw(f"u{i % 7}", f"p{i}", 1000.0 + i) for i in range(2500)]  # more than one chunk
    assert duck.insert(batch) == 2500
    assert duck.seen_since("u3", 0, ["p3", "p4", "p10"]) == {"p3", "p10"}


def test_duckdb_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "impressions.duckdb"
    first = DuckdbImpressions(path)
    first.insert([saw("bob", "p1", 100.0)])
    first.close()
    second = DuckdbImpressions(path)
    assert second.seen_since("bob", 0) == {"p1"}
    second.close()


def test_duckdb_readers_and_a_writer_share_the_store(duck: DuckdbImpressions) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                duck.seen_since("bob", 0, ["p1", "p2", "p3"])
                duck.count()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for n in range(50):
            duck.insert([saw("bob", f"p{n}", float(n)), saw("alice", f"p{n}", float(n))])
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert errors == []
    assert duck.count() == 100


# --- Redis fallback: bounded per user -------------------------------------------------------------


@pytest.fixture
def recent(redis_url: str) -> Iterator[RedisRecentImpressions]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield RedisRecentImpressions(client, cap=3, window_seconds=WINDOW)
    client.close()


def test_recent_keeps_the_newest_cap(recent: RedisRecentImpressions, now: float) -> None:
    recent.record([saw("bob", f"p{i}", now - 10 + i) for i in range(5)], now=now)
    assert recent.seen_since("bob", 0) == {"p2", "p3", "p4"}


def test_recent_trims_to_the_window_and_expires(recent: RedisRecentImpressions, now: float) -> None:
    recent.record([saw("bob", "old", now - 25 * HOUR), saw("bob", "new", now - HOUR)], now=now)
    assert recent.client.zrange(seen_key("bob"), 0, -1) == ["new"]
    assert 0 < recent.client.ttl(seen_key("bob")) <= WINDOW


def test_recent_replay_never_moves_a_post_back_in_time(recent: RedisRecentImpressions, now: float) -> None:
    recent.record([saw("bob", "p1", now - HOUR)], now=now)
    recent.record([saw("bob", "p1", now - 5 * HOUR)], now=now)  # an older impression, replayed
    assert recent.client.zscore(seen_key("bob"), "p1") == now - HOUR

"""One contract for every EventLog: Redis Streams on both Redis servers, Kafka when reachable, and
the in-memory fake of ``labcore.testing`` (so the fake unit tests use cannot drift from the real ones).

Kafka runs against ``FEEDLAB_TEST_KAFKA_BOOTSTRAP`` when set (the compose stack), else against the
session's real Kafka engine (``labcore.engines``, started once on free ports). It does not need
Redis, so it runs once, under the ``embedded`` id; so does the in-memory fake of ``labcore.testing``.

A "crash" here is ``close()`` without ``ack``: Redis keeps the entries pending for the consumer,
Kafka keeps the group's committed offsets where they were. Either way the records must come back.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from labcore.adapters.events.base import EventLog, Outgoing, Subscription, partition_for
from labcore.adapters.events.redis_streams import RedisStreamsEventLog
from labcore.domain import Record
from labcore.engines.process import free_port
from labcore.errors import BackendUnavailable
from labcore.testing import MemoryEventLog
from tests.conftest import _unreachable as unreachable
from tests.helpers import once_across_redis_servers

KAFKA_BOOTSTRAP = os.environ.get("FEEDLAB_TEST_KAFKA_BOOTSTRAP")
PARTITIONS = 4
SHORT_CLAIM_MS = 50


@dataclass
class Backend:
    """How to build logs of one backend, and to wait until a group's members are all assigned."""

    make_log: Callable[[int | None], EventLog]  # claim_idle_ms (None = the backend default)
    settle: Callable[[list[Subscription]], None] = lambda subscriptions: None
    _logs: list[EventLog] = field(default_factory=list)
    _subscriptions: list[Subscription] = field(default_factory=list)

    def log(self, claim_idle_ms: int | None = None) -> EventLog:
        log = self.make_log(claim_idle_ms)
        self._logs.append(log)
        return log

    def subscribe(self, log: EventLog, topic: str, group: str, consumer: str) -> Subscription:
        subscription = log.subscribe(topic, group, consumer)
        self._subscriptions.append(subscription)
        return subscription

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        for log in self._logs:
            log.close()


def redis_backend(url: str) -> Backend:
    def make_log(claim_idle_ms: int | None) -> EventLog:
        kwargs = {} if claim_idle_ms is None else {"claim_idle_ms": claim_idle_ms}
        return RedisStreamsEventLog.from_url(url, PARTITIONS, **kwargs)

    return Backend(make_log)


def kafka_backend(bootstrap: str) -> Backend:
    from labcore.adapters.events.kafka import (
        KafkaEventLog,  # only when Kafka is selected
    )

    def make_log(claim_idle_ms: int | None) -> EventLog:
        # Kafka has no per-record claim timeout: a dead member's partitions move on rebalance.
        return KafkaEventLog(bootstrap, PARTITIONS, bootstrap_timeout_ms=5000)

    def settle(subscriptions: list[Subscription]) -> None:
        # Members join by polling; keep them all polling until the partitions are split among them.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            owned = [s.assigned_partitions() for s in subscriptions]  # type: ignore[attr-defined]
            if all(owned) and sum(len(p) for p in owned) == PARTITIONS:
                return
            for subscription in subscriptions:
                assert subscription.poll(timeout_ms=200) == [], "settle runs before publishing"
        pytest.fail("Kafka consumer group did not settle within 30 s")

    return Backend(make_log, settle)


def memory_backend() -> Backend:
    def make_log(claim_idle_ms: int | None) -> EventLog:
        kwargs = {} if claim_idle_ms is None else {"claim_idle_ms": claim_idle_ms}
        return MemoryEventLog(PARTITIONS, **kwargs)

    logs: dict[int | None, EventLog] = {}  # one log per claim setting: subscribers must share a log

    return Backend(lambda claim: logs.setdefault(claim, make_log(claim)))


@pytest.fixture(params=["redis-streams", "kafka", "memory"])
def backend(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Backend]:
    if request.param == "redis-streams":
        chosen = redis_backend(redis_url)
    elif request.param == "memory":
        once_across_redis_servers(request, "the in-memory fake")
        chosen = memory_backend()
    else:
        once_across_redis_servers(request, "Kafka")
        # A named broker (the compose stack), else the session's Kafka engine.
        bootstrap = KAFKA_BOOTSTRAP or request.getfixturevalue("engines").get("kafka").bootstrap
        try:
            chosen = kafka_backend(bootstrap)
            chosen.make_log(None).close()  # probe: is a broker there?
        except BackendUnavailable as exc:
            unreachable(f"Kafka at {bootstrap}", exc)
    yield chosen
    chosen.close()


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def publish_numbered(log: EventLog, topic: str, keys: list[str], count: int) -> None:
    """Publish ``count`` records, ``n`` = 0..count-1, keys taken round-robin from ``keys``."""
    for n in range(count):
        key = keys[n % len(keys)]
        log.publish(topic, key, {"n": n, "key": key})


def drain(
    subscription: Subscription, expected: int, *, ack: bool = True, seconds: float = 45
) -> list[Record]:
    """Poll until ``expected`` records arrived or time is up; ack each batch unless told not to."""
    records: list[Record] = []
    deadline = time.monotonic() + seconds
    while len(records) < expected and time.monotonic() < deadline:
        batch = subscription.poll(timeout_ms=200)
        if ack:
            subscription.ack(batch)
        records.extend(batch)
    return records


def numbers(records: list[Record]) -> list[int]:
    return [record.value["n"] for record in records]


# --- publish and poll -----------------------------------------------------------------------------


def test_roundtrip_keeps_key_value_and_headers(backend: Backend, topic: str) -> None:
    log = backend.log()
    value = {"post_id": "p1", "content": "héllo ✓", "tags": ["a", "b"], "n": 1}
    log.publish(topic, "author-1", value, headers={"trace-id": "abc123", "source": "test"})

    [record] = drain(backend.subscribe(log, topic, "g", "c1"), 1)

    assert record.topic == topic
    assert record.key == "author-1"
    assert record.value == value
    assert record.headers == {"trace-id": "abc123", "source": "test"}
    assert record.partition == partition_for("author-1", PARTITIONS)
    assert isinstance(record.offset, str) and record.offset


def test_same_key_same_partition_in_publish_order(backend: Backend, topic: str) -> None:
    log = backend.log()
    keys = [f"author-{i}" for i in range(6)]
    publish_numbered(log, topic, keys, 60)

    records = drain(backend.subscribe(log, topic, "g", "c1"), 60)

    assert sorted(numbers(records)) == list(range(60))
    for key in keys:
        mine = [r for r in records if r.key == key]
        assert {r.partition for r in mine} == {partition_for(key, PARTITIONS)}
        assert numbers(mine) == sorted(numbers(mine)), f"{key}: order lost"
    assert len({r.partition for r in records}) > 1, "six keys should spread over partitions"


def test_publish_many_is_publish_in_order_over_topics_keys_and_headers(backend: Backend, topic: str) -> None:
    log = backend.log()
    keys = [f"author-{i}" for i in range(6)]
    other = f"{topic}-other"
    log.publish_many(
        [Outgoing(topic, keys[n % 6], {"n": n}, {"traceparent": f"t{n}"}) for n in range(60)]
        + [Outgoing(other, "author-0", {"n": 60})]
    )

    records = drain(backend.subscribe(log, topic, "g", "c1"), 60)

    assert sorted(numbers(records)) == list(range(60))
    for record in records:
        assert record.partition == partition_for(record.key, PARTITIONS)
        assert record.headers == {"traceparent": f"t{record.value['n']}"}
    for key in keys:
        mine = numbers([r for r in records if r.key == key])
        assert mine == sorted(mine), f"{key}: order lost"
    assert numbers(drain(backend.subscribe(log, other, "g-other", "c1"), 1)) == [60]
    log.publish_many([])  # nothing to send is not an error


# --- consumer groups ------------------------------------------------------------------------------


def test_one_group_splits_records_between_its_consumers(backend: Backend, topic: str) -> None:
    log = backend.log()
    first = backend.subscribe(log, topic, "g", "c1")
    second = backend.subscribe(log, topic, "g", "c2")
    backend.settle([first, second])
    publish_numbered(log, topic, [f"author-{i}" for i in range(20)], 80)

    got: dict[str, list[int]] = {"c1": [], "c2": []}
    deadline = time.monotonic() + 15
    while len(got["c1"]) + len(got["c2"]) < 80 and time.monotonic() < deadline:
        for name, subscription in (("c1", first), ("c2", second)):
            batch = subscription.poll(max_records=5, timeout_ms=100)
            assert len(batch) <= 5
            subscription.ack(batch)
            got[name].extend(numbers(batch))

    assert sorted(got["c1"] + got["c2"]) == list(range(80)), "each record exactly once"
    assert got["c1"] and got["c2"], "both consumers should get a share"


def test_every_group_gets_every_record(backend: Backend, topic: str) -> None:
    log = backend.log()
    fanout = backend.subscribe(log, topic, "fanout", "c1")
    ranking = backend.subscribe(log, topic, "ranking", "c1")
    publish_numbered(log, topic, ["a", "b", "c"], 30)

    assert sorted(numbers(drain(fanout, 30))) == list(range(30))
    assert sorted(numbers(drain(ranking, 30))) == list(range(30))


# --- acks and redelivery --------------------------------------------------------------------------


def test_acked_records_are_not_delivered_again(backend: Backend, topic: str) -> None:
    log = backend.log(claim_idle_ms=SHORT_CLAIM_MS)
    publish_numbered(log, topic, ["a", "b", "c"], 9)
    consumer = backend.subscribe(log, topic, "g", "c1")
    assert sorted(numbers(drain(consumer, 9))) == list(range(9))  # drain acks
    consumer.close()
    time.sleep(SHORT_CLAIM_MS * 3 / 1000)

    restarted = backend.subscribe(log, topic, "g", "c1")
    other = backend.subscribe(log, topic, "g", "c2")
    assert drain(restarted, 1, seconds=1) == []
    assert drain(other, 1, seconds=1) == []


def test_unacked_records_come_back_to_the_restarted_consumer(backend: Backend, topic: str) -> None:
    log = backend.log()
    publish_numbered(log, topic, ["a", "b", "c"], 6)
    crashed = backend.subscribe(log, topic, "g", "worker-1")
    delivered = drain(crashed, 6, ack=False)
    assert sorted(numbers(delivered)) == list(range(6))
    crashed.close()  # dies before acking

    restarted = backend.subscribe(log, topic, "g", "worker-1")
    replayed = drain(restarted, 6)

    assert sorted((r.partition, r.offset) for r in replayed) == sorted(
        (r.partition, r.offset) for r in delivered
    )
    assert drain(restarted, 1, seconds=1) == [], "acked after the replay: done"


def test_unacked_records_of_a_dead_consumer_go_to_another(backend: Backend, topic: str) -> None:
    log = backend.log(claim_idle_ms=SHORT_CLAIM_MS)
    publish_numbered(log, topic, ["a", "b", "c"], 6)
    dead = backend.subscribe(log, topic, "g", "worker-1")
    delivered = drain(dead, 6, ack=False)
    dead.close()  # never comes back
    time.sleep(SHORT_CLAIM_MS * 3 / 1000)

    survivor = backend.subscribe(log, topic, "g", "worker-2")
    claimed = drain(survivor, 6)

    assert sorted(numbers(claimed)) == sorted(numbers(delivered)) == list(range(6))
    assert drain(survivor, 1, seconds=1) == []


def test_redis_streams_repeats_a_finished_claim_scan_only_after_its_interval(embedded_redis, topic: str) -> None:
    """Each XAUTOCLAIM is a round trip for the worker's thread; a busy consumer polls many times a
    second, and an entry can only become claimable after claim_idle_ms. Redis's own command counts."""
    log = RedisStreamsEventLog.from_url(embedded_redis.url, PARTITIONS, claim_idle_ms=2_000)  # every 1 s
    subscription = log.subscribe(topic, "g", "c1")

    def claims() -> int:
        return int(log._client.info("commandstats").get("cmdstat_xautoclaim", {}).get("calls", 0))  # noqa: SLF001

    try:
        before = claims()
        for _ in range(10):
            assert subscription.poll(timeout_ms=1) == []
        assert claims() - before == PARTITIONS, "one pass over the streams, in one round trip"
        time.sleep(1.1)
        subscription.poll(timeout_ms=1)
        assert claims() - before == 2 * PARTITIONS, "the scan runs again once the interval is over"
    finally:
        subscription.close()
        log.close()


# --- tail and failures ----------------------------------------------------------------------------


def test_tail_returns_the_newest_oldest_first(backend: Backend, topic: str) -> None:
    log = backend.log()
    assert log.tail(topic, 5) == []
    for n in range(12):
        log.publish(topic, f"author-{n % 5}", {"n": n})
        # Ordering across partitions is by time (ms); keep each record in its own millisecond.
        time.sleep(0.003)

    assert numbers(log.tail(topic, 5)) == [7, 8, 9, 10, 11]
    assert numbers(log.tail(topic, 100)) == list(range(12))


# --- backlog ---------------------------------------------------------------------------------------


def test_backlog_counts_what_the_group_has_not_acked(backend: Backend, topic: str) -> None:
    log = backend.log()
    consumer = backend.subscribe(log, topic, "g", "c1")
    backend.settle([consumer])
    assert log.backlog(topic, "g") == 0
    publish_numbered(log, topic, ["a", "b", "c", "d", "e"], 12)

    assert log.backlog(topic, "g") == 12, "published, not delivered"
    assert log.backlog(topic, "never-joined") == 12, "a new group starts from the earliest record"
    delivered = drain(consumer, 12, ack=False)
    assert len(delivered) == 12
    assert log.backlog(topic, "g") == 12, "delivered but not acked is still owed"
    consumer.ack(delivered)
    assert log.backlog(topic, "g") == 0
    assert log.backlog(f"{topic}-empty", "g") == 0


def test_unreachable_redis_raises_backend_unavailable() -> None:
    log = RedisStreamsEventLog.from_url(f"redis://127.0.0.1:{free_port()}/0", PARTITIONS)
    try:
        with pytest.raises(BackendUnavailable, match="event-log") as caught:
            log.publish("t", "k", {"n": 1})
        assert caught.value.__cause__ is not None
        with pytest.raises(BackendUnavailable):
            log.subscribe("t", "g", "c1")
        with pytest.raises(BackendUnavailable):
            log.tail("t")
        with pytest.raises(BackendUnavailable):
            log.backlog("t", "g")
    finally:
        log.close()


def test_a_down_memory_log_is_backend_unavailable() -> None:
    log = MemoryEventLog(PARTITIONS)
    subscription = log.subscribe("t", "g", "c1")
    log.down = True
    for call in (lambda: log.publish("t", "k", {"n": 1}), lambda: subscription.poll(timeout_ms=10), log.health):
        with pytest.raises(BackendUnavailable, match="event-log"):
            call()


# --- Kafka: a client that hangs -------------------------------------------------------------------


def test_a_hung_kafka_poll_is_cut_off_and_a_new_member_gets_the_records(request: pytest.FixtureRequest) -> None:
    """kafka-python 3.0.12 can leave ``poll`` waiting forever on its own IO thread after a
    rebalance. The hang is staged here exactly there: the coordinator's step of ``poll`` runs a
    coroutine on the client's IO loop that never finishes. The subscription's watchdog must cut it
    off (``BackendUnavailable``), and a new member, as the worker loop makes next, gets everything."""
    from labcore.adapters.events.kafka import KafkaEventLog

    bootstrap = KAFKA_BOOTSTRAP or request.getfixturevalue("engines").get("kafka").bootstrap
    topic = f"test-{uuid.uuid4().hex[:8]}"
    log = KafkaEventLog(bootstrap, PARTITIONS, poll_stall_seconds=2.0)
    try:
        publish_numbered(log, topic, ["a", "b", "c"], 9)
        hung = log.subscribe(topic, "g", "c1")
        net = hung._consumer._client._net  # noqa: SLF001 - staging the library's own failure

        async def never() -> None:
            await net.sleep(3600)

        hung._consumer._coordinator.poll = lambda timeout_ms=None: net.run(never)  # noqa: SLF001
        raised: list[BaseException] = []

        def poll() -> None:
            try:
                hung.poll(timeout_ms=200)
            except BackendUnavailable as exc:
                raised.append(exc)

        polling = threading.Thread(target=poll, daemon=True)  # a failure must not hang the suite
        polling.start()
        polling.join(20)
        assert not polling.is_alive(), "the hung poll was never cut off"
        assert raised and "hung" in str(raised[0]), raised
        hung.close()  # what the worker loop does next; closing twice is harmless

        fresh = log.subscribe(topic, "g", "c1")
        try:
            assert sorted(numbers(drain(fresh, 9))) == list(range(9))
        finally:
            fresh.close()
    finally:
        log.close()


def test_a_kafka_member_the_group_dropped_rejoins_and_an_idle_member_stays(request: pytest.FixtureRequest) -> None:
    """The hang's second face: polls return, empty, from a member whose join never completed and
    whom the coordinator dropped. After ``stall_seconds`` without partitions the subscription asks
    the coordinator; a member it lists stays (an idle member of an over-provisioned group), one it
    does not list raises ``BackendUnavailable`` so the worker loop joins again."""
    from labcore.adapters.events.kafka import KafkaEventLog

    bootstrap = KAFKA_BOOTSTRAP or request.getfixturevalue("engines").get("kafka").bootstrap
    topic = f"test-{uuid.uuid4().hex[:8]}"
    log = KafkaEventLog(bootstrap, PARTITIONS, poll_stall_seconds=1.0)
    subscription = log.subscribe(topic, "g", "c1")
    try:
        deadline = time.monotonic() + 30
        while not subscription.assigned_partitions() and time.monotonic() < deadline:
            subscription.poll(timeout_ms=200)
        assert subscription.assigned_partitions(), "the member never joined"
        assert log._has_member("g", "c1") and not log._has_member("g", "c2")  # noqa: SLF001 - the coordinator's answer

        subscription._consumer.assignment = set  # noqa: SLF001 - stage "holds no partitions"
        idle_until = time.monotonic() + 3
        while time.monotonic() < idle_until:  # listed by the coordinator: an idle member stays
            assert subscription.poll(timeout_ms=200) == []
        subscription._is_member = lambda: log._has_member("g", "c2")  # noqa: SLF001 - "dropped": not listed
        with pytest.raises(BackendUnavailable, match="no longer counts it as a member"):
            while time.monotonic() < idle_until + 5:
                subscription.poll(timeout_ms=200)
    finally:
        subscription.close()
        log.close()

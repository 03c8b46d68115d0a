"""The event log on Apache Kafka (the compose profile's backend), via kafka-python.

Import this module only when settings select the Kafka backend: it imports kafka-python at the top.

Mapping of the port onto Kafka:

* ``publish`` sends to partition ``partition_for(key, partitions)`` (the partition Redis Streams
  would pick, rather than Kafka's murmur2 partitioner) and waits for ``acks="all"``. The value is
  JSON, headers are ``(str, bytes)`` pairs as Kafka wants them.
* Topics are created on first use with ``partitions`` partitions (broker-default replication).
* ``subscribe`` is a ``KafkaConsumer`` in ``group`` with auto-commit off, starting from the earliest
  offset when the group has none. ``ack`` commits ``offset + 1`` per partition, so a consumer that
  dies (or closes) before acking leaves the offsets where they were: whoever gets the partition next
  (the same consumer restarted, or another after the rebalance) re-reads from there.
* ``tail`` uses a throwaway group-less consumer that seeks ``count`` records back on each partition.

Serialization uses kafka-python 3.x's ``DefaultSerializer`` (keys, UTF-8) and ``JsonSerializer``
(values); 3.x deprecates plain callables there.

Failing fast: every kafka-python client bootstraps eagerly in its constructor and raises
``KafkaTimeoutError`` after ``bootstrap_timeout_ms`` when no broker answers (kafka-python 3.x has no
``NoBrokersAvailable``). That and every other ``KafkaError`` becomes ``BackendUnavailable``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.serializer import DefaultSerializer, JsonSerializer
from kafka.structs import OffsetAndMetadata

from labcore.adapters.events.base import EventLog, Outgoing, Subscription, partition_for
from labcore.domain import Record
from labcore.errors import BackendUnavailable

log = logging.getLogger(__name__)


@contextmanager
def _kafka_errors(bootstrap: str, timeout_ms: int) -> Iterator[None]:
    """Translate kafka-python errors at the adapter boundary."""
    try:
        yield
    except KafkaTimeoutError as exc:
        message = f"no Kafka broker at {bootstrap} within {timeout_ms} ms"
        raise BackendUnavailable("event-log", message) from exc
    except KafkaError as exc:
        raise BackendUnavailable("event-log", f"Kafka at {bootstrap}: {exc}") from exc


class KafkaEventLog(EventLog):
    """The event-log port on Kafka: one topic with ``partitions`` partitions per lab topic."""

    def __init__(
        self, bootstrap: str, partitions: int, bootstrap_timeout_ms: int = 5000, poll_stall_seconds: float = 30.0
    ) -> None:
        """Connect now, so a missing broker fails here within ``bootstrap_timeout_ms``.
        ``poll_stall_seconds``: how long past its timeout a consumer's poll may hang before the
        subscription is cut off (see ``KafkaSubscription``)."""
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._timeout_ms = bootstrap_timeout_ms
        self._poll_stall_seconds = poll_stall_seconds
        self._known_topics: set[str] = set()
        with self._kafka_errors():
            # The producer first: unlike the admin client and the consumer, a producer whose
            # bootstrap fails does not leave kafka-python's IO thread behind.
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all",
                key_serializer=DefaultSerializer(),  # str <-> UTF-8 bytes
                value_serializer=JsonSerializer(),
                bootstrap_timeout_ms=bootstrap_timeout_ms,
                max_block_ms=bootstrap_timeout_ms,  # send() waiting for metadata or buffer space
            )
        try:
            with self._kafka_errors():
                self._admin = KafkaAdminClient(
                    bootstrap_servers=bootstrap,
                    bootstrap_timeout_ms=bootstrap_timeout_ms,
                    request_timeout_ms=bootstrap_timeout_ms,  # health() must answer within it
                )
        except BackendUnavailable:
            self._producer.close(timeout=1)
            raise

    def publish(
        self, topic: str, key: str, value: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self.publish_many([Outgoing(topic, key, value, headers or {})])

    def publish_many(self, events: Sequence[Outgoing]) -> None:
        """Send every event, then wait for the broker's acknowledgements: the producer batches them
        per partition. Its idempotence (kafka-python's default) keeps each partition's order when a
        batch is retried."""
        for topic in {event.topic for event in events}:
            self._ensure_topic(topic)
        with self._kafka_errors():
            futures = [
                self._producer.send(
                    event.topic,
                    key=event.key,
                    value=event.value,
                    headers=[(name, text.encode()) for name, text in event.headers.items()],
                    partition=partition_for(event.key, self._partitions),
                )
                for event in events
            ]
            # The same budget bounds the broker's acknowledgement: a broker that went away after
            # start-up surfaces as BackendUnavailable within seconds, not after two minutes.
            deadline = time.monotonic() + self._timeout_ms / 1000
            for future in futures:
                future.get(timeout=max(0.0, deadline - time.monotonic()))

    def subscribe(self, topic: str, group: str, consumer: str) -> KafkaSubscription:
        self._ensure_topic(topic)
        with self._kafka_errors():
            kafka_consumer = KafkaConsumer(
                topic,
                group_id=group,
                client_id=consumer,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **self._consumer_config(),
            )
        return KafkaSubscription(
            kafka_consumer,
            self._bootstrap,
            self._timeout_ms,
            self._poll_stall_seconds,
            is_member=lambda: self._has_member(group, consumer),
        )

    def _has_member(self, group: str, client_id: str) -> bool:
        """Whether the group's coordinator lists a member with this client id (True when it cannot
        be asked: only a definite "no" makes a subscription rejoin)."""
        try:
            with self._kafka_errors():
                described = self._admin.describe_groups([group])
        except BackendUnavailable:
            return True
        groups = described.values() if isinstance(described, dict) else described
        return any(member.get("client_id") == client_id for info in groups for member in info.get("members", []))

    def backlog(self, topic: str, group: str) -> int:
        """Per partition: the log-end offset minus the group's committed offset (its consumer lag).
        A partition the group never committed is read from the earliest offset, so it owes
        everything from there."""
        self._ensure_topic(topic)
        partitions = [TopicPartition(topic, p) for p in range(self._partitions)]
        with self._kafka_errors():
            committed = self._admin.list_group_offsets({group: partitions}).get(group, {})
            latest = self._admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
            earliest = self._admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in partitions})
        total = 0
        for tp in partitions:
            position = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else -1
            start = earliest[tp].offset if position < 0 else position
            total += max(0, latest[tp].offset - start)
        return total

    def tail(self, topic: str, count: int = 10) -> list[Record]:
        if count <= 0:
            return []
        self._ensure_topic(topic)
        with self._kafka_errors():
            config = self._consumer_config()
            consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **config)
            try:
                return self._read_tail(consumer, topic, count)
            finally:
                consumer.close(autocommit=False)

    def health(self) -> None:
        """A metadata round trip to the broker. (kafka-python's ``bootstrap_connected()`` is true only
        while the first bootstrap is in flight, so against a real broker it said "down" forever.)"""
        with self._kafka_errors():
            self._admin.describe_cluster()

    def close(self) -> None:
        self._producer.close(timeout=self._timeout_ms / 1000)
        self._admin.close()

    # ---------------------------------------------------------------------------------------------

    def _consumer_config(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self._bootstrap,
            "bootstrap_timeout_ms": self._timeout_ms,
            "key_deserializer": DefaultSerializer(),
            "value_deserializer": JsonSerializer(),
        }

    def _ensure_topic(self, topic: str) -> None:
        """Create ``topic`` with ``partitions`` partitions unless it exists (once per process)."""
        if topic in self._known_topics:
            return
        with self._kafka_errors():
            try:
                self._admin.create_topics(
                    {topic: {"num_partitions": self._partitions, "replication_factor": -1}},
                    wait_for_metadata=True,  # else the first send may not see the new partitions
                )
            except TopicAlreadyExistsError:
                pass
        self._known_topics.add(topic)

    def _read_tail(self, consumer: KafkaConsumer, topic: str, count: int) -> list[Record]:
        numbers = sorted(consumer.partitions_for_topic(topic))
        partitions = [TopicPartition(topic, number) for number in numbers]
        consumer.assign(partitions)
        first = consumer.beginning_offsets(partitions, timeout_ms=self._timeout_ms)
        end = consumer.end_offsets(partitions, timeout_ms=self._timeout_ms)
        remaining = {tp for tp in partitions if end[tp] > first[tp]}
        for tp in remaining:
            consumer.seek(tp, max(first[tp], end[tp] - count))
        raws = []
        deadline = time.monotonic() + self._timeout_ms / 1000
        while remaining and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=200).items():
                raws.extend(raw for raw in batch if raw.offset < end[tp])
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        # Kafka orders records only within a partition; the timestamp orders them across.
        raws.sort(key=lambda raw: (raw.timestamp, raw.partition, raw.offset))
        return [_to_record(raw) for raw in raws[-count:]]

    def _kafka_errors(self) -> AbstractContextManager[None]:
        return _kafka_errors(self._bootstrap, self._timeout_ms)


class KafkaSubscription(Subscription):
    """One member of a Kafka consumer group; partitions are spread over members by rebalancing.

    A watchdog cuts off a ``poll`` that has not returned ``stall_seconds`` after its own timeout.
    kafka-python 3.0.12 sometimes never does: right after a rebalance the member's call into its IO
    thread waits for a coroutine that is never run (seen on the compose stack's embedding worker:
    two of its three groups stuck for good, the broker removing them on heartbeat expiry). Closing
    the consumer fails that pending call, ``poll`` raises ``BackendUnavailable``, and the worker
    loop joins again with a new consumer; nothing was committed, so nothing is lost.

    The same bug has a second face: ``poll`` keeps returning, empty, but the member never applied
    its assignment and the coordinator dropped it on heartbeat expiry (seen in CI on the embedding
    group). A member that has held no partitions for ``stall_seconds`` asks the coordinator
    (``is_member``) whether it still counts; if not, ``poll`` raises the same way. An idle member of
    a group with more members than partitions is still a member, so it stays.
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        bootstrap: str,
        timeout_ms: int,
        stall_seconds: float = 30.0,
        is_member: Callable[[], bool] = lambda: True,
    ) -> None:
        self._consumer = consumer
        self._is_member = is_member
        self._unassigned_since: float | None = None
        self._bootstrap = bootstrap
        self._timeout_ms = timeout_ms
        self._stall_seconds = stall_seconds
        self._poll_deadline: float | None = None  # when the poll in flight counts as stalled
        self._stalled = False
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name=f"kafka-watchdog-{consumer.config['client_id']}", daemon=True)
        self._watchdog.start()

    def _kafka_errors(self) -> AbstractContextManager[None]:
        return _kafka_errors(self._bootstrap, self._timeout_ms)

    def poll(self, max_records: int = 500, timeout_ms: int = 1000) -> list[Record]:
        self._poll_deadline = time.monotonic() + timeout_ms / 1000 + self._stall_seconds
        try:
            with self._kafka_errors():
                batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except BackendUnavailable as exc:
            if self._stalled:
                raise self._stall_error() from exc
            raise
        finally:
            self._poll_deadline = None
        if self._stalled:  # the cut-off raced the poll's own return: rejoin all the same
            raise self._stall_error()
        self._check_membership()
        return [_to_record(raw) for tp in sorted(batches) for raw in batches[tp]]

    def _check_membership(self) -> None:
        """Raise if this member has held no partitions for ``stall_seconds`` and the coordinator no
        longer counts it (asked at most once per ``stall_seconds``)."""
        if self._consumer.assignment():
            self._unassigned_since = None
            return
        now = time.monotonic()
        if self._unassigned_since is None:
            self._unassigned_since = now
        elif now - self._unassigned_since > self._stall_seconds:
            self._unassigned_since = now
            if not self._is_member():
                raise BackendUnavailable(
                    "event-log",
                    f"{self._consumer.config['client_id']} holds no partitions and its group no longer"
                    " counts it as a member (a join that never completed); rejoining the group",
                )

    def _stall_error(self) -> BackendUnavailable:
        return BackendUnavailable(
            "event-log", f"the Kafka client's poll hung for over {self._stall_seconds:g} s; rejoining the group"
        )

    def _watch(self) -> None:
        while not self._closed.wait(1.0):
            deadline = self._poll_deadline
            if deadline is not None and time.monotonic() > deadline:
                log.warning("%s: %s", self._consumer.config["client_id"], self._stall_error())
                self._stalled = True
                self._close_consumer()
                return

    def _close_consumer(self) -> None:
        try:
            self._consumer.close(autocommit=False, timeout_ms=self._timeout_ms)
        except Exception:  # noqa: BLE001 - closing a broken client; the next subscribe starts afresh
            log.debug("closing a Kafka consumer failed", exc_info=True)

    def ack(self, records: Sequence[Record]) -> None:
        """Commit, per partition, the offset after the highest acked record."""
        if not records:
            return
        next_offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            next_offsets[tp] = max(next_offsets.get(tp, 0), int(record.offset) + 1)
        # kafka-python 3.x: OffsetAndMetadata(offset, metadata, leader_epoch); -1 = epoch unknown.
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in next_offsets.items()}
        with self._kafka_errors():
            self._consumer.commit(offsets)

    def assigned_partitions(self) -> set[int]:
        """The partitions this member owns right now (Kafka-only; for tests and notebooks)."""
        return {tp.partition for tp in self._consumer.assignment()}

    def close(self) -> None:
        """Leave the group without committing: unacked records go to the next owner."""
        self._closed.set()
        self._consumer.close(autocommit=False)


def _to_record(raw: Any) -> Record:
    """A kafka-python ConsumerRecord as a Record (vendor types stay inside the adapter)."""
    return Record(
        topic=raw.topic,
        partition=raw.partition,
        offset=str(raw.offset),
        key=raw.key,
        value=raw.value,
        headers={name: value.decode() for name, value in raw.headers or []},
    )

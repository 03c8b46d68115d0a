"""The event-log port: publish keyed events, consume them in groups with acks.

Delivery is at-least-once: a record is redelivered until a consumer of its group acks it, including
after that consumer crashed (Redis: pending entries are replayed or claimed; Kafka: uncommitted
offsets are re-read). Consumers must therefore be idempotent.

Records are partitioned by key (same key, same partition, so one author's posts stay in order).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labcore.domain import Record


@dataclass(frozen=True)
class Outgoing:
    """One event to append: what ``publish`` takes as arguments, for ``publish_many``."""

    topic: str
    key: str
    value: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Subscription(ABC):
    """One consumer's view of a topic inside a consumer group."""

    @abstractmethod
    def poll(self, max_records: int = 500, timeout_ms: int = 1000) -> list[Record]:
        """Up to ``max_records`` records not yet acked by this group; waits up to ``timeout_ms``."""

    @abstractmethod
    def ack(self, records: Sequence[Record]) -> None:
        """Mark records as processed for the group; they are not delivered again."""

    @abstractmethod
    def close(self) -> None: ...


class EventLog(ABC):
    @abstractmethod
    def publish(
        self, topic: str, key: str, value: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        """Append one event; returns once the log has accepted it durably."""

    def publish_many(self, events: Sequence[Outgoing]) -> None:
        """Append ``events`` in order; returns once the log has accepted every one. On an error some
        may have been appended (the caller publishes them again: delivery is at least once).

        This default publishes one by one; a backend overrides it to pay one round trip per batch
        (the outbox relay drains a seeded world's hundreds of thousands of events through it)."""
        for event in events:
            self.publish(event.topic, event.key, event.value, event.headers)

    @abstractmethod
    def subscribe(self, topic: str, group: str, consumer: str) -> Subscription:
        """Join ``group`` as ``consumer``; unacked records of a crashed consumer come back."""

    @abstractmethod
    def backlog(self, topic: str, group: str) -> int:
        """How many records of ``topic`` ``group`` has not acked yet: not delivered (the lag) plus
        delivered but unacked. A group no consumer has joined yet owes every record (it starts from
        the earliest). What ``/health`` reports as "the world is not ready yet"."""

    @abstractmethod
    def tail(self, topic: str, count: int = 10) -> list[Record]:
        """The newest ``count`` records across partitions, oldest first (for inspection only)."""

    @abstractmethod
    def health(self) -> None:
        """Raise ``BackendUnavailable`` when the log cannot be reached."""

    @abstractmethod
    def close(self) -> None: ...


def partition_for(key: str, partitions: int) -> int:
    """Stable keyed partitioning (the same on every process and every run, unlike ``hash()``)."""
    import zlib

    return zlib.crc32(key.encode()) % partitions

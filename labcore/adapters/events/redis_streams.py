"""The event log on Redis Streams (the embedded profile's backend).

Layout: one stream per partition, ``events:{topic}:{partition}``. ``publish`` picks the partition
with ``partition_for(key, partitions)`` (so one author's posts stay ordered) and XADDs the fields
``key``, ``value`` (JSON) and ``headers`` (JSON). A record's offset is its stream entry id.

Consuming uses one Redis consumer group per lab consumer group, created on every partition stream.
Each ``poll`` fills its batch in three steps, cheapest promise first:

1. **Replay** this consumer's own pending entries (XREADGROUP with id ``0``): what it had read but
   not acked when it crashed. This runs once per subscription, paging through the backlog, which
   is how a consumer restarted under the same name picks up where it died.
2. **Claim** entries another consumer has left unacked for longer than ``claim_idle_ms``
   (XAUTOCLAIM): that consumer is presumed dead. A live consumer that sits on a record longer than
   this also gets it redelivered, like a visibility timeout.
3. **Read new** entries (XREADGROUP with ``>``), blocking up to ``timeout_ms`` on all partition
   streams in one call.

XREADGROUP's COUNT is per stream, so step 3 can return more than the caller asked for; the surplus
waits in the subscription's buffer for the next ``poll``. It already counts as delivered to this
consumer (it is in its pending list), so a crash replays it like anything else.

Every redis-py error becomes ``BackendUnavailable("event-log", ...)`` raised from the original.
The client must be created with ``decode_responses=True`` (``from_url`` does this).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from labcore.adapters.events.base import EventLog, Outgoing, Subscription, partition_for
from labcore.domain import Record
from labcore.errors import BackendUnavailable

DEFAULT_CLAIM_IDLE_MS = 30_000

# (entry id, fields) as redis-py returns stream entries.
Entry = tuple[str, dict[str, str]]


def stream_name(topic: str, partition: int) -> str:
    return f"events:{topic}:{partition}"


@contextmanager
def _redis_errors() -> Iterator[None]:
    """Translate redis-py errors at the adapter boundary."""
    try:
        yield
    except redis.RedisError as exc:
        raise BackendUnavailable("event-log", f"Redis: {exc}") from exc


class RedisStreamsEventLog(EventLog):
    """The event-log port on Redis Streams: one stream per (topic, partition)."""

    def __init__(
        self,
        client: redis.Redis,
        partitions: int,
        *,
        maxlen: int | None = None,
        claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS,
        owns_client: bool = False,
    ) -> None:
        """``maxlen`` caps each stream (approximate trimming, so Redis trims whole nodes cheaply);
        ``None`` keeps everything. ``claim_idle_ms`` is the default for every subscription."""
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self._client = client
        self._partitions = partitions
        self._maxlen = maxlen
        self._claim_idle_ms = claim_idle_ms
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, partitions: int, **kwargs: Any) -> RedisStreamsEventLog:
        """A log with its own client (closed by ``close``); connects lazily, on first use."""
        client = redis.Redis.from_url(url, decode_responses=True)
        return cls(client, partitions, owns_client=True, **kwargs)

    def streams(self, topic: str) -> list[str]:
        """The partition streams of ``topic``, in partition order."""
        return [stream_name(topic, p) for p in range(self._partitions)]

    def publish(
        self, topic: str, key: str, value: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        stream, fields = self._entry(Outgoing(topic, key, value, headers or {}))
        with _redis_errors():
            self._client.xadd(stream, fields, maxlen=self._maxlen, approximate=True)

    def publish_many(self, events: Sequence[Outgoing]) -> None:
        """One pipelined round trip of XADDs (not a transaction: each entry stands alone)."""
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            stream, fields = self._entry(event)
            pipe.xadd(stream, fields, maxlen=self._maxlen, approximate=True)
        with _redis_errors():
            pipe.execute()

    def _entry(self, event: Outgoing) -> tuple[str, dict[str, str]]:
        """The partition stream and the entry's fields for ``event``."""
        fields = {"key": event.key, "value": json.dumps(event.value), "headers": json.dumps(event.headers)}
        return stream_name(event.topic, partition_for(event.key, self._partitions)), fields

    def subscribe(
        self, topic: str, group: str, consumer: str, *, claim_idle_ms: int | None = None
    ) -> RedisStreamsSubscription:
        subscription = RedisStreamsSubscription(
            self._client,
            topic,
            self.streams(topic),
            group,
            consumer,
            claim_idle_ms=self._claim_idle_ms if claim_idle_ms is None else claim_idle_ms,
        )
        subscription.create_groups()
        return subscription

    def backlog(self, topic: str, group: str) -> int:
        """Per partition stream: the group's ``lag`` (entries not yet delivered) plus ``pending``
        (delivered, not acked), from XINFO GROUPS."""
        with _redis_errors():
            return sum(self._stream_backlog(stream, group) for stream in self.streams(topic))

    def _stream_backlog(self, stream: str, group: str) -> int:
        try:
            groups = self._client.xinfo_groups(stream)
        except redis.ResponseError as exc:
            if "no such key" in str(exc).lower():  # nothing published on this partition yet
                return 0
            raise
        info = next((g for g in groups if g["name"] == group), None)
        if info is None:  # nobody subscribed yet: the group will start from the first entry
            return int(self._client.xlen(stream))
        lag = info.get("lag")
        if lag is None:  # Redis < 7 has no lag; 7.x gives none after a deletion: count the entries
            lag = len(self._client.xrange(stream, min=f"({info['last-delivered-id']}", max="+"))
        return int(lag) + int(info["pending"])

    def tail(self, topic: str, count: int = 10) -> list[Record]:
        if count <= 0:
            return []
        newest: list[Record] = []
        with _redis_errors():
            for stream in self.streams(topic):
                entries = self._client.xrevrange(stream, count=count)
                newest.extend(_to_record(topic, stream, entry) for entry in entries)
        # Entry ids start with the append time in ms, so they order records across streams
        # (two appends in the same millisecond on different streams tie: fine for inspection).
        newest.sort(key=lambda record: _id_order(record.offset))
        return newest[-count:]

    def health(self) -> None:
        with _redis_errors():
            self._client.ping()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


class RedisStreamsSubscription(Subscription):
    """One consumer of a Redis consumer group, reading all partition streams of a topic."""

    def __init__(
        self,
        client: redis.Redis,
        topic: str,
        streams: list[str],
        group: str,
        consumer: str,
        *,
        claim_idle_ms: int,
    ) -> None:
        self._client = client
        self._topic = topic
        self._streams = streams
        self._group = group
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        # Replay cursor per stream: the last pending id returned; dropped once that stream is done.
        self._replay_from = {stream: "0" for stream in streams}
        # XAUTOCLAIM is a scan; each call continues where the previous one stopped.
        self._claim_from = {stream: "0-0" for stream in streams}
        # An entry becomes claimable only after claim_idle_ms, so a finished scan need not be
        # repeated on every poll: at most twice per claim_idle_ms, and at least once a second.
        self._claim_every = min(1.0, claim_idle_ms / 2000)
        self._next_claim = 0.0
        self._buffer: list[Record] = []

    def create_groups(self) -> None:
        """Create the group on every partition stream (and the stream itself) unless it exists.

        Id ``0`` means a new group starts from the beginning of the stream, like Kafka's
        ``auto_offset_reset="earliest"``.
        """
        with _redis_errors():
            for stream in self._streams:
                try:
                    self._client.xgroup_create(stream, self._group, id="0", mkstream=True)
                except redis.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    def poll(self, max_records: int = 500, timeout_ms: int = 1000) -> list[Record]:
        if not self._buffer:
            try:
                self._fill(max_records, timeout_ms)
            except BackendUnavailable as exc:
                # A stream or group deleted under us (FLUSHDB in a notebook): recreate, try again.
                if "NOGROUP" not in str(exc):
                    raise
                self.create_groups()
                self._fill(max_records, timeout_ms)
        batch, self._buffer = self._buffer[:max_records], self._buffer[max_records:]
        return batch

    def ack(self, records: Sequence[Record]) -> None:
        if not records:
            return
        ids_by_stream: dict[str, list[str]] = {}
        for record in records:
            stream = stream_name(record.topic, record.partition)
            ids_by_stream.setdefault(stream, []).append(record.offset)
        with _redis_errors():
            pipe = self._client.pipeline(transaction=False)
            for stream, ids in ids_by_stream.items():
                pipe.xack(stream, self._group, *ids)
            pipe.execute()

    def close(self) -> None:
        """Leave without acking: whatever this consumer holds stays pending for a replay or claim.

        The client belongs to the log, so it stays open.
        """
        self._buffer = []

    # --- the three steps of a poll ---------------------------------------------------------------

    def _fill(self, max_records: int, timeout_ms: int) -> None:
        with _redis_errors():
            if self._replay_from:
                self._replay_pending(max_records)
            if len(self._buffer) < max_records:
                self._claim_idle(max_records - len(self._buffer))
            if len(self._buffer) < max_records:
                # Block only when there is nothing to hand back yet.
                block = timeout_ms if not self._buffer and timeout_ms > 0 else None
                self._read_new(max_records - len(self._buffer), block)

    def _replay_pending(self, count: int) -> None:
        """Step 1: this consumer's own unacked entries, once, from the oldest."""
        reply = self._client.xreadgroup(
            self._group, self._consumer, dict(self._replay_from), count=count
        )
        seen: set[str] = set()
        for stream, entries in _stream_batches(reply):
            if entries:
                seen.add(stream)
                self._replay_from[stream] = entries[-1][0]
                self._take(stream, entries)
        for stream in list(self._replay_from):
            if stream not in seen:  # nothing left to replay on this stream
                del self._replay_from[stream]

    def _claim_idle(self, count: int) -> None:
        """Step 2: entries left unacked longer than ``claim_idle_ms``, whoever held them.

        One round trip for all streams. A scan that has more to go continues on the next poll; a
        finished one is repeated after ``_claim_every`` (each XAUTOCLAIM costs the worker a round
        trip, and a busy consumer polls many times a second). What this claims beyond ``count``
        stays buffered for the next poll, owned by this consumer like anything it reads.
        """
        now = time.monotonic()
        scanning = any(cursor != "0-0" for cursor in self._claim_from.values())
        if not scanning and now < self._next_claim:
            return
        self._next_claim = now + self._claim_every
        pipe = self._client.pipeline(transaction=False)
        for stream in self._streams:
            pipe.xautoclaim(
                stream, self._group, self._consumer, self._claim_idle_ms,
                start_id=self._claim_from[stream], count=count,
            )  # fmt: skip
        for stream, reply in zip(self._streams, pipe.execute(), strict=True):
            # Redis 6.2 answers [next, entries]; 7.x adds a third element, the deleted ids.
            self._claim_from[stream] = reply[0]
            self._take(stream, reply[1])

    def _read_new(self, count: int, block_ms: int | None) -> None:
        """Step 3: entries never delivered to the group, from all streams in one call."""
        reply = self._client.xreadgroup(
            self._group,
            self._consumer,
            dict.fromkeys(self._streams, ">"),
            count=count,
            block=block_ms,
        )
        for stream, entries in _stream_batches(reply):
            self._take(stream, entries)

    def _take(self, stream: str, entries: list[Entry]) -> None:
        """Buffer entries as records; ack the ones trimmed away (nothing left to deliver)."""
        trimmed = []
        for entry_id, fields in entries:
            if entry_id is None:  # Redis 6.2 XAUTOCLAIM: deleted entry, id not reported
                continue
            if not fields:  # still pending, but MAXLEN trimmed its content away
                trimmed.append(entry_id)
                continue
            self._buffer.append(_to_record(self._topic, stream, (entry_id, fields)))
        if trimmed:
            self._client.xack(stream, self._group, *trimmed)


# --- decoding ------------------------------------------------------------------------------------


def _to_record(topic: str, stream: str, entry: Entry) -> Record:
    entry_id, fields = entry
    return Record(
        topic=topic,
        partition=int(stream.rsplit(":", 1)[1]),
        offset=entry_id,
        key=fields["key"],
        value=json.loads(fields["value"]),
        headers=json.loads(fields.get("headers") or "{}"),
    )


def _id_order(entry_id: str) -> tuple[int, int]:
    """Stream ids are ``<ms>-<seq>``: compare them as numbers, not strings."""
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def _stream_batches(reply: Any) -> Iterator[tuple[str, list[Entry]]]:
    """(stream, entries) pairs from an XREADGROUP reply, in RESP2 (list) or RESP3 (dict) shape."""
    if not reply:
        return
    if isinstance(reply, dict):  # RESP3: {stream: [entries]}
        for stream, wrapped in reply.items():
            yield stream, wrapped[0] if wrapped else []
    else:  # RESP2: [[stream, entries], ...]
        for stream, entries in reply:
            yield stream, entries

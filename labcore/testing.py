"""In-memory fakes of the lab's ports, for tests and exercises only — never used by product code.

Each fake keeps its state in Python objects, needs no server, and passes the same contract suite as
the real backends (``tests/contract``), so a test written against a fake tests what the product
relies on, not a private guess about it. ``bootstrap.build_stack`` accepts any of them as an
override (``build_stack(settings, events=MemoryEventLog())``); nothing in ``labcore`` falls back to
one on its own (``tests/unit/test_architecture.py`` fails if a product module imports this one).

``MemoryEventLog``     the event log: keyed partitions, consumer groups, acks, replay and claim
``MemoryImpressions``  the impressions port, loadable like DuckDB (``insert``) or Redis (``record``)
``MemoryMedia``        the media port, with ``fetch(url)`` doing what a browser does with a URL
``MemoryVectors``      the vector port: exact cosine search over a dict
``MemoryFeatures``     the feature port: rows put in by the test, absent rows are ``None`` parts
``HashEmbedder``       a FAKE embedder: words hashed to fixed random directions (no model, no meaning)
``FakeLab``            the ``LabClient`` calls the notebook widgets make, with the stack's lags

Every port fake has ``down``: set it and each call raises ``BackendUnavailable`` like a dead server.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from labcore.adapters.events.base import EventLog, Subscription, partition_for
from labcore.adapters.impressions.base import ImpressionStore
from labcore.adapters.media.base import MediaStore, check_key
from labcore.adapters.vectors.base import VectorHit, VectorItem, VectorStore
from labcore.domain import ImpressionLogged, Record
from labcore.errors import BackendUnavailable, Forbidden, NotFound
from labcore.features.base import AuthorAffinity, FeatureRow, FeatureSource, PostStats, RankingFeatures, UserStats
from labcore.feed.journey import Journey
from labcore.widgets.feed import DRILL_FALLBACKS as FALLBACKS  # what stopping each service falls back to

DIM = 384  # labcore.embeddings.DIM, without importing the model's module


class _Down:
    """The ``down`` switch every port fake shares."""

    component = ""
    down = False

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable(self.component, "stopped by the test")


# =================================================================================================
# Event log
# =================================================================================================


class MemoryEventLog(_Down, EventLog):
    """The event-log port in memory, with the Redis Streams adapter's delivery rules.

    Records go to ``partition_for(key, partitions)``; offsets are the index within the partition.
    A consumer group has one read cursor per partition and a pending list. ``poll`` first replays the
    consumer's own pending records once per subscription (a restart under the same name), then claims
    records another consumer has left unacked for ``claim_idle_ms`` (presumed dead), then reads new
    ones. Thread-safe: a worker thread may poll while the test publishes.
    """

    component = "event-log"

    def __init__(self, partitions: int = 4, *, claim_idle_ms: int = 30_000) -> None:
        self.partitions = partitions
        self.claim_idle_ms = claim_idle_ms
        self._topics: dict[str, list[list[Record]]] = {}
        self._order: dict[str, list[Record]] = {}  # publish order, for tail
        self._cursors: dict[tuple[str, str], list[int]] = {}  # (topic, group) -> next index per partition
        # (topic, group) -> {(partition, offset): (consumer, delivered at, record)}
        self._pending: dict[tuple[str, str], dict[tuple[int, str], tuple[str, float, Record]]] = {}
        self._changed = threading.Condition()

    def publish(self, topic: str, key: str, value: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._check()
        with self._changed:
            partitions = self._topics.setdefault(topic, [[] for _ in range(self.partitions)])
            partition = partition_for(key, self.partitions)
            record = Record(topic, partition, str(len(partitions[partition])), key, _copy(value), dict(headers or {}))
            partitions[partition].append(record)
            self._order.setdefault(topic, []).append(record)
            self._changed.notify_all()

    def subscribe(self, topic: str, group: str, consumer: str) -> Subscription:
        self._check()
        with self._changed:
            self._cursors.setdefault((topic, group), [0] * self.partitions)
            self._pending.setdefault((topic, group), {})
        return MemorySubscription(self, topic, group, consumer)

    def backlog(self, topic: str, group: str) -> int:
        """Not yet delivered (all of it, for a group nobody joined) plus delivered but unacked."""
        self._check()
        with self._changed:
            partitions = self._topics.get(topic, [])
            cursor = self._cursors.get((topic, group), [0] * self.partitions)
            undelivered = sum(len(records) - cursor[i] for i, records in enumerate(partitions))
            return undelivered + len(self._pending.get((topic, group), {}))

    def tail(self, topic: str, count: int = 10) -> list[Record]:
        self._check()
        with self._changed:
            return list(self._order.get(topic, [])[-count:]) if count > 0 else []

    def health(self) -> None:
        self._check()

    def close(self) -> None:
        pass

    # --- used by MemorySubscription, under the lock ------------------------------------------------
    def _take(self, sub: MemorySubscription, limit: int) -> list[Record]:
        pending = self._pending[(sub.topic, sub.group)]
        now = time.monotonic()
        taken: list[Record] = []
        if sub.replaying:  # 1. this consumer's own unacked records, once per subscription
            for key, (owner, _, record) in sorted(pending.items(), key=lambda kv: (kv[0][0], int(kv[0][1]))):
                if len(taken) >= limit:
                    return taken
                if owner == sub.consumer:
                    pending[key] = (owner, now, record)
                    taken.append(record)
            sub.replaying = False
        for key, (owner, since, record) in list(pending.items()):  # 2. claim from the presumed dead
            if len(taken) >= limit:
                return taken
            if owner != sub.consumer and (now - since) * 1000 >= self.claim_idle_ms:
                pending[key] = (sub.consumer, now, record)
                taken.append(record)
        cursor = self._cursors[(sub.topic, sub.group)]  # 3. new records
        partitions = self._topics.get(sub.topic, [])
        for index, records in enumerate(partitions):
            while cursor[index] < len(records) and len(taken) < limit:
                record = records[cursor[index]]
                cursor[index] += 1
                pending[(record.partition, record.offset)] = (sub.consumer, now, record)
                taken.append(record)
        return taken


class MemorySubscription(Subscription):
    def __init__(self, log: MemoryEventLog, topic: str, group: str, consumer: str) -> None:
        self.log, self.topic, self.group, self.consumer = log, topic, group, consumer
        self.replaying = True
        self.closed = False

    def poll(self, max_records: int = 500, timeout_ms: int = 1000) -> list[Record]:
        self.log._check()
        deadline = time.monotonic() + timeout_ms / 1000
        with self.log._changed:
            while True:
                taken = self.log._take(self, max_records)
                remaining = deadline - time.monotonic()
                if taken or remaining <= 0:
                    return taken
                # Wake on a publish, or soon enough to see a claim come due.
                self.log._changed.wait(min(remaining, 0.05))

    def ack(self, records: Sequence[Record]) -> None:
        self.log._check()
        with self.log._changed:
            pending = self.log._pending[(self.topic, self.group)]
            for record in records:
                pending.pop((record.partition, record.offset), None)

    def close(self) -> None:
        self.closed = True  # like a crash: what was not acked stays pending for the group


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    """What a JSON round trip would give back: the publisher's dict cannot change the record."""
    import json

    return json.loads(json.dumps(value))


# =================================================================================================
# Impressions
# =================================================================================================


class MemoryImpressions(_Down, ImpressionStore):
    """The impressions port over a set of ``ImpressionLogged``; the bound is floored to the second."""

    component = "olap"

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.rows: list[ImpressionLogged] = []  # in arrival order, each distinct impression once
        self.batches: list[list[ImpressionLogged]] = []  # every batch loaded, as given
        self._seen: set[ImpressionLogged] = set()
        self._lock = threading.Lock()

    def insert(self, impressions: Sequence[ImpressionLogged]) -> int:
        """Load a batch the way the impressions worker loads DuckDB; returns how many were new."""
        self._check()
        with self._lock:
            self.batches.append(list(impressions))
            new = [i for i in dict.fromkeys(impressions) if i not in self._seen]
            self._seen.update(new)
            self.rows.extend(new)
        return len(new)

    def record(self, impressions: Sequence[ImpressionLogged], now: float | None = None) -> None:
        """Load a batch the way the API writes the Redis fallback (``RedisRecentImpressions.record``)."""
        self.insert(impressions)

    def seen_since(self, user_id: str, since_epoch: float, post_ids: Sequence[str] | None = None) -> set[str]:
        self._check()
        bound = math.floor(since_epoch)
        wanted = None if post_ids is None else set(post_ids)
        with self._lock:
            return {
                row.post_id
                for row in self.rows
                if row.user_id == user_id and row.seen_at >= bound and (wanted is None or row.post_id in wanted)
            }

    def recent(self, limit: int) -> list[ImpressionLogged]:
        """The newest ``limit`` impressions, newest first (what ``DuckdbImpressions.recent`` gives)."""
        with self._lock:
            return sorted(self.rows, key=lambda row: row.seen_at, reverse=True)[:limit]

    def count(self) -> int:
        return len(self.rows)

    def health(self) -> None:
        self._check()


# =================================================================================================
# Media
# =================================================================================================


class MemoryMedia(_Down, MediaStore):
    """The media port over a dict. URLs are ``memory://media/<key>?expires=<epoch s>``; ``fetch``
    serves one the way a browser would get it, refusing it once expired."""

    component = "media"

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put(self, key: str, data: bytes, content_type: str) -> None:
        check_key(key)
        self._check()
        self.objects[key] = (bytes(data), content_type)

    def get(self, key: str) -> tuple[bytes, str]:
        check_key(key)
        self._check()
        if key not in self.objects:
            raise NotFound(f"no media under {key!r}")
        return self.objects[key]

    def url(self, key: str, expires_seconds: int) -> str:
        check_key(key)
        return f"memory://media/{key}?expires={int(time.time()) + int(expires_seconds)}"

    def fetch(self, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme != "memory" or parts.netloc != "media":
            raise Forbidden(f"not a URL of this store: {url}")
        if int(parse_qs(parts.query)["expires"][0]) < time.time():
            raise Forbidden("expired")
        return self.get(parts.path.removeprefix("/"))[0]

    def health(self) -> None:
        self._check()


# =================================================================================================
# Vectors
# =================================================================================================


class MemoryVectors(_Down, VectorStore):
    """The vector port over a dict of unit vectors: exact (brute-force) cosine search."""

    component = "vectors"

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.items: dict[str, VectorItem] = {}

    def ensure_collection(self) -> None:
        self._check()

    def upsert(self, items: Sequence[VectorItem]) -> None:
        self._check()
        for item in items:
            vector = np.asarray(item.vector, dtype=np.float32)
            vector = vector / np.linalg.norm(vector)
            self.items[item.post_id] = VectorItem(item.post_id, vector, item.author_id, item.created_at)

    def search(self, vector: np.ndarray, limit: int, exclude_author_ids: Collection[str] = ()) -> list[VectorHit]:
        self._check()
        excluded = set(exclude_author_ids)
        query = np.asarray(vector, dtype=np.float32)
        query = query / np.linalg.norm(query)
        hits = [
            VectorHit(item.post_id, float(item.vector @ query), item.author_id)
            for item in self.items.values()
            if item.author_id not in excluded
        ]
        hits.sort(key=lambda hit: (-hit.score, hit.post_id))
        return hits[:limit]

    def vectors(self, post_ids: Sequence[str]) -> dict[str, np.ndarray]:
        self._check()
        return {pid: self.items[pid].vector.copy() for pid in post_ids if pid in self.items}

    def count(self) -> int:
        self._check()
        return len(self.items)

    def points(self, limit: int) -> list[VectorItem]:
        self._check()
        return list(self.items.values())[:limit]

    def health(self) -> None:
        self._check()


# =================================================================================================
# Features
# =================================================================================================


class MemoryFeatures(_Down, FeatureSource):
    """The feature port over rows the test puts in.

    Like Feast and the Redis cache, every requested post gets a ``FeatureRow``, whose parts are
    ``None`` where no row exists (an unknown reader, post, or a pair without affinity evidence).
    ``calls`` lists each ``ranking_features`` call as ``(user_id, posts)``; ``error``, when set, is
    raised by every call — a bug in the source, which is not an outage (``down``).
    """

    component = "features"

    def __init__(
        self,
        rows: Iterable[UserStats | PostStats | AuthorAffinity] = (),
        *,
        down: bool = False,
        error: Exception | None = None,
    ) -> None:
        self.down = down
        self.error = error
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []
        self.users: dict[str, UserStats] = {}
        self.posts: dict[str, PostStats] = {}
        self.affinities: dict[tuple[str, str], AuthorAffinity] = {}
        self.put(*rows)

    def put(self, *rows: UserStats | PostStats | AuthorAffinity) -> MemoryFeatures:
        for row in rows:
            if isinstance(row, UserStats):
                self.users[row.user_id] = row
            elif isinstance(row, PostStats):
                known = self.posts.get(row.post_id)
                if row.embedding is None and known is not None and known.embedding is not None:
                    row = PostStats(**{**asdict(row), "embedding": known.embedding})  # never erase a vector
                self.posts[row.post_id] = row
            elif isinstance(row, AuthorAffinity):
                self.affinities[(row.user_id, row.author_id)] = row
            else:
                raise TypeError(f"not a feature row: {row!r}")
        return self

    def ranking_features(self, user_id: str, posts: Sequence[tuple[str, str]]) -> RankingFeatures:
        self.calls.append((user_id, list(posts)))
        if self.error is not None:
            raise self.error
        self._check()
        user = self.users.get(user_id)
        return {
            post_id: FeatureRow(
                post_id, author_id, user, self.posts.get(post_id), self.affinities.get((user_id, author_id))
            )
            for post_id, author_id in posts
        }

    def health(self) -> None:
        self._check()


# =================================================================================================
# Embeddings
# =================================================================================================


class HashEmbedder:
    """A FAKE of ``labcore.embeddings.Embedder`` for tests: no model, no meaning, fully deterministic.

    Each lower-cased word maps to a fixed random unit direction (seeded by its CRC-32); a text is
    the normalized sum of its words, so texts sharing words are closer than texts that share none.
    ``table`` pins exact vectors for whole texts where a test needs them. ``calls`` counts
    ``encode`` calls (``stats()`` reports them as the real one does). The lab itself never uses this:
    discovery runs on the real model or not at all.
    """

    def __init__(self, table: Mapping[str, np.ndarray] | None = None, *, dim: int = DIM, batch_size: int = 128) -> None:
        self._exclusive = threading.RLock()
        self.table = {text: _unit(vector, dim) for text, vector in (table or {}).items()}
        self.dim = dim
        self.batch_size = batch_size
        self.model_name = "fake/hash-embedder"
        self.calls = 0
        self.texts = 0
        self.model_seconds = 0.0

    loaded = True

    def exclusive(self) -> threading.RLock:
        """The same contract as ``Embedder.exclusive``: look up, encode and store as one step."""
        return self._exclusive

    def load(self) -> HashEmbedder:
        return self

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        start = time.perf_counter()
        matrix = np.stack([self._one(text) for text in texts]).astype(np.float32)
        self.texts += len(texts)
        self.model_seconds += time.perf_counter() - start
        return matrix

    def stats(self) -> dict[str, Any]:
        return {"calls": self.calls, "texts": self.texts, "model_seconds": self.model_seconds}

    def _one(self, text: str) -> np.ndarray:
        if text in self.table:
            return self.table[text]
        words = text.lower().split() or [""]
        total = sum(np.random.default_rng(zlib.crc32(w.encode())).standard_normal(self.dim) for w in words)
        return _unit(total, self.dim)


def _unit(vector: Any, dim: int) -> np.ndarray:
    padded = np.zeros(dim, dtype=np.float32)
    values = np.asarray(vector, dtype=np.float32).ravel()[:dim]
    padded[: values.size] = values
    return padded / np.linalg.norm(padded)


# =================================================================================================
# The notebook client
# =================================================================================================


def journey_json(post_id: str, source: str = "social", **fields: Any) -> dict[str, Any]:
    """One journey as ``GET /feed/explain`` returns it (``Journey``'s fields, JSON-shaped)."""
    journey = Journey(post_id, source, float(fields.pop("retrieval_score", 0.0)))
    return asdict(journey) | fields


class FakeLab:
    """Stands in for ``labcore.lab.client.LabClient`` where widget tests need the API without a stack.

    The world is ``posts`` (ids in feed order) and, for discovery, ``vectors`` (post id → vector);
    one reader's interest vector starts at ``interest``. What is asynchronous in the real stack
    stays asynchronous here: a like moves the interest vector (EMA at ``rate``) only on the
    ``interest_lag``-th ``inspect("interest/...")`` after it, and reported impressions reach the
    OLAP rows on the ``olap_lag``-th ``inspect("impressions")``. ``stop``/``start`` add and remove a
    service's fallback on every feed; ``fail_read_of`` makes reads raise while that service is
    stopped, and ``slow_to_recover`` reads after a restart still report a fallback (warming up).
    ``calls`` records stops and starts in order.
    """

    def __init__(
        self,
        posts: Sequence[str] = (),
        *,
        vectors: Mapping[str, np.ndarray] | None = None,
        interest: np.ndarray | None = None,
        rate: float = 0.2,
        interest_lag: int = 2,
        olap_lag: int = 2,
        now: float | None = None,
        fail_read_of: str | None = None,
        slow_to_recover: int = 0,
    ) -> None:
        self.vectors = {pid: _unit(v, np.asarray(v).size) for pid, v in (vectors or {}).items()}
        self.posts = list(posts) or list(self.vectors)
        self.interest = None if interest is None else np.asarray(interest, dtype=np.float32)
        self.rate, self.interest_lag, self.olap_lag = rate, interest_lag, olap_lag
        self.now = now
        self.fail_read_of, self.slow = fail_read_of, slow_to_recover
        self.likes: set[str] = set()
        self.seen: set[str] = set()
        self.rows: list[dict[str, Any]] = []  # OLAP rows, oldest first
        self.stopped: set[str] = set()
        self.calls: list[str] = []
        self._liked: list[str] = []  # likes the interest worker has not applied yet
        self._interest_polls = 0
        self._reported: list[dict[str, Any]] = []  # impressions the loader has not inserted yet
        self.olap_reads = 0

    # --- writes ------------------------------------------------------------------------------------
    def like(self, user_id: str, post_id: str) -> dict[str, Any]:
        if post_id in self.likes:
            return {"status": "already_liked"}
        self.likes.add(post_id)
        self._liked.append(post_id)
        return {"status": "liked"}

    def impressions(self, user_id: str, post_ids: list[str]) -> dict[str, Any]:
        seen_at = time.time() if self.now is None else self.now
        self.seen |= set(post_ids)
        self._reported += [{"user_id": user_id, "post_id": p, "seen_at": seen_at} for p in post_ids]
        return {"recorded": len(post_ids)}

    # --- reads -------------------------------------------------------------------------------------
    def feed(self, user_id: str, limit: int | None = None) -> dict[str, Any]:
        if self.fail_read_of in self.stopped:
            raise RuntimeError("the API broke")
        fallbacks = [FALLBACKS[name] for name in sorted(self.stopped) if name in FALLBACKS]
        if not fallbacks and self.slow:
            self.slow -= 1
            fallbacks = [FALLBACKS["ranking"]]  # a restarted server still warming up
        kept = [p for p in self._ordered() if p not in self.seen][:limit]
        return {
            "items": [{"post_id": p, "content": f"text of {p}"} for p in kept],
            "fallbacks": fallbacks,
            "feature_source": "redis-cache" if "feature-server" in self.stopped else "feast",
            "model_version": "recency" if "ranking" in self.stopped else "formula-v1",
            "candidates_discovery": 0 if "vectors" in self.stopped else len(self.vectors),
        }

    def explain(self, user_id: str, limit: int | None = None) -> dict[str, Any]:
        result = self.feed(user_id, limit)
        scores = self._similarities()
        journeys = [
            journey_json(
                p,
                "discovery" if p in scores else "social",
                retrieval_score=scores.get(p, 0.0),
                filtered="seen_in_24h" if p in self.seen else None,
            )
            for p in self._ordered()
        ]
        return result | {"journeys": journeys}

    def inspect(self, what: str, **params: Any) -> Any:
        if what.startswith("interest/"):
            return self._inspect_interest()
        if what == "impressions":
            self.olap_reads += 1
            if self.olap_reads >= self.olap_lag:
                self.rows, self._reported = self.rows + self._reported, []
            return {"rows": list(reversed(self.rows))}
        raise NotImplementedError(f"FakeLab does not fake inspect({what!r})")

    # --- services ----------------------------------------------------------------------------------
    def stop(self, service: str) -> dict[str, str]:
        self.calls.append(f"stop {service}")
        self.stopped.add(service)
        return {}

    def start(self, service: str) -> dict[str, str]:
        self.calls.append(f"start {service}")
        self.stopped.discard(service)
        return {}

    # --- inside ------------------------------------------------------------------------------------
    def _inspect_interest(self) -> dict[str, Any]:
        from labcore.interests import ema_step

        if self._liked:
            self._interest_polls += 1
            if self._interest_polls >= self.interest_lag:
                for post_id in self._liked:
                    self.interest = ema_step(self.interest, self.vectors[post_id], self.rate)
                self._liked, self._interest_polls = [], 0
        return {"vector": None if self.interest is None else self.interest.tolist()}

    def _similarities(self) -> dict[str, float]:
        if self.interest is None or not self.vectors:
            return {}
        query = self.interest / np.linalg.norm(self.interest)
        return {pid: float(vector @ query) for pid, vector in self.vectors.items()}

    def _ordered(self) -> list[str]:
        """Feed order: by similarity to the interest vector when there is one, else as given."""
        scores = self._similarities()
        return sorted(self.posts, key=lambda p: -scores[p]) if scores else list(self.posts)

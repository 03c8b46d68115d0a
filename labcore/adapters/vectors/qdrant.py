"""QdrantVectors: the vector port on Qdrant, as a server (compose) or in local mode (embedded).

* ``QdrantVectors.server(url)`` talks to a Qdrant server over HTTP, with a short timeout so a down
  server becomes the feed's "no vectors" fallback within a request instead of hanging it.
* ``QdrantVectors.local(path)`` runs qdrant-client's local mode: the same API, executed in-process
  and persisted under ``path``. Local mode locks its folder, so exactly one process owns it — the
  embedded runtime — and everyone else goes through that process.

Points are keyed by the post's UUID (other ids map to a stable UUIDv5), so re-upserting a post
replaces its point. The payload keeps ``post_id``, ``author_id`` (indexed on the server, for the
"not these authors" filter) and ``created_at``. Collections use cosine distance, so Qdrant stores
vectors normalized; the lab's embeddings are unit vectors already.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException

from labcore.adapters.vectors.base import VectorHit, VectorItem, VectorStore
from labcore.embeddings import DIM
from labcore.errors import BackendUnavailable

T = TypeVar("T")

# Non-UUID post ids (tests, hand-made data) become stable UUIDv5 point ids under this namespace.
_POINT_NAMESPACE = uuid.UUID("5d0f3c2e-6a43-4d0b-9f1e-2f6f0b7c1a10")
# Points per upsert request: bounds the JSON body (~8 KB per 384-dim point) for big backfills.
_UPSERT_CHUNK = 256
_PAYLOAD = ["post_id", "author_id", "created_at"]


def point_id(post_id: str) -> str:
    """The Qdrant point id of a post: its UUID, or a UUIDv5 of any other id."""
    try:
        return str(uuid.UUID(post_id))
    except ValueError:
        return str(uuid.uuid5(_POINT_NAMESPACE, post_id))


class QdrantVectors(VectorStore):
    def __init__(self, client: QdrantClient, collection: str, *, where: str, local: bool) -> None:
        self.client = client
        self.collection = collection
        self.where = where  # for messages: the URL or the folder
        self.is_local = local
        # Local mode is plain Python over SQLite, not made for concurrent callers: the runtime's
        # worker threads and API threads take turns. A server handles concurrency itself.
        self._lock: AbstractContextManager[Any] = threading.RLock() if local else nullcontext()

    @classmethod
    def local(cls, path: Path, collection: str = "posts") -> QdrantVectors:
        """Local mode persisted under ``path``; raises ``BackendUnavailable`` if another process owns it."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            # Several threads of the owning process use the client; the lock above serializes them.
            client = QdrantClient(path=str(path), force_disable_check_same_thread=True)
        except RuntimeError as exc:  # "already accessed by another instance of Qdrant client"
            raise BackendUnavailable("vectors", f"Qdrant folder {path} is owned by another process: {exc}") from exc
        return cls(client, collection, where=str(path), local=True)

    @classmethod
    def server(cls, url: str, collection: str = "posts", timeout: float = 2) -> QdrantVectors:
        """A Qdrant server at ``url``; connecting is lazy, so a down server fails on first use."""
        # check_compatibility would call the server here, at construction; health() does that job.
        client = QdrantClient(url=url, timeout=timeout, check_compatibility=False)  # type: ignore[arg-type]
        return cls(client, collection, where=url, local=False)

    # --- plumbing --------------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Serialize local-mode calls and translate qdrant-client failures at the boundary."""
        with self._lock:
            try:
                yield
            except (ApiException, httpx.HTTPError, ConnectionError, TimeoutError) as exc:
                # ApiException covers HTTP error statuses and transport errors qdrant-client wraps.
                raise BackendUnavailable("vectors", f"Qdrant at {self.where}: {_first_line(exc)}") from exc
            except RuntimeError as exc:  # local mode: the client was closed
                raise BackendUnavailable("vectors", f"Qdrant at {self.where}: {exc}") from exc
            except ValueError as exc:
                # Local mode reports a missing collection as ValueError; anything else is a bug.
                if "not found" in str(exc):
                    raise BackendUnavailable("vectors", f"Qdrant at {self.where}: {exc}") from exc
                raise

    def _call(self, fn: Callable[[], T]) -> T:
        with self._errors():
            return fn()

    # --- the port --------------------------------------------------------------------------------
    def ensure_collection(self) -> None:
        with self._errors():
            if not self.client.collection_exists(self.collection):
                try:
                    self.client.create_collection(
                        self.collection,
                        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
                    )
                except (ApiException, ValueError):
                    # Another worker created it between our check and our create: same outcome.
                    if not self.client.collection_exists(self.collection):
                        raise
            if not self.is_local:
                # Discovery filters on author_id every request; local mode has no payload indexes.
                self.client.create_payload_index(
                    self.collection, "author_id", field_schema=models.PayloadSchemaType.KEYWORD
                )

    def upsert(self, items: Sequence[VectorItem]) -> None:
        points = [
            models.PointStruct(
                id=point_id(item.post_id),
                vector=np.asarray(item.vector, dtype=np.float32).tolist(),
                payload={"post_id": item.post_id, "author_id": item.author_id, "created_at": item.created_at},
            )
            for item in items
        ]
        with self._errors():
            for start in range(0, len(points), _UPSERT_CHUNK):
                self.client.upsert(self.collection, points[start : start + _UPSERT_CHUNK], wait=True)

    def search(
        self, vector: np.ndarray, limit: int, exclude_author_ids: Collection[str] = ()
    ) -> list[VectorHit]:
        if limit <= 0:
            return []
        excluded = set(exclude_author_ids)
        if self.is_local and excluded:
            # Local mode evaluates a payload filter in Python point by point (33 ms at 3k posts,
            # 200 ms at 20k, measured by bench/profile_feed.py); an unfiltered query is numpy.
            # So over-fetch and drop the excluded authors here, widening until enough are left.
            fetch = limit + 50
            while True:
                hits = self._query(vector, fetch, None)
                kept = [hit for hit in hits if hit.author_id not in excluded]
                if len(kept) >= limit or len(hits) < fetch:
                    return kept[:limit]
                fetch *= 2
        query_filter = None
        if excluded:
            query_filter = models.Filter(
                must_not=[models.FieldCondition(key="author_id", match=models.MatchAny(any=list(excluded)))]
            )
        return self._query(vector, limit, query_filter)

    def _query(self, vector: np.ndarray, limit: int, query_filter: models.Filter | None) -> list[VectorHit]:
        response = self._call(
            lambda: self.client.query_points(
                self.collection,
                query=np.asarray(vector, dtype=np.float32).tolist(),
                query_filter=query_filter,
                limit=limit,
                with_payload=["post_id", "author_id"],
            )
        )
        return [
            VectorHit(post_id=p.payload["post_id"], score=float(p.score), author_id=p.payload["author_id"])
            for p in response.points
            if p.payload
        ]

    def vectors(self, post_ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not post_ids:
            return {}
        records = self._call(
            lambda: self.client.retrieve(
                self.collection,
                ids=list({point_id(p) for p in post_ids}),
                with_payload=["post_id"],
                with_vectors=True,
            )
        )
        return {r.payload["post_id"]: np.asarray(r.vector, dtype=np.float32) for r in records if r.payload}

    def count(self) -> int:
        return self._call(lambda: self.client.count(self.collection, exact=True).count)

    def points(self, limit: int) -> list[VectorItem]:
        records, _next = self._call(
            lambda: self.client.scroll(self.collection, limit=limit, with_payload=_PAYLOAD, with_vectors=True)
        )
        return [
            VectorItem(
                post_id=r.payload["post_id"],
                vector=np.asarray(r.vector, dtype=np.float32),
                author_id=r.payload["author_id"],
                created_at=float(r.payload["created_at"]),
            )
            for r in records
            if r.payload
        ]

    def health(self) -> None:
        if not self._call(lambda: self.client.collection_exists(self.collection)):
            raise BackendUnavailable("vectors", f"Qdrant at {self.where} has no collection {self.collection!r}")

    def close(self) -> None:
        with self._lock:
            self.client.close()

    def __repr__(self) -> str:
        mode = "local" if self.is_local else "server"
        return f"QdrantVectors({mode}, {self.where!r}, collection={self.collection!r})"


def _first_line(exc: Exception) -> str:
    # ResponseHandlingException wraps the transport error and has no message of its own.
    source = getattr(exc, "source", None)
    text = str(source or exc) or type(source or exc).__name__
    return text.splitlines()[0]

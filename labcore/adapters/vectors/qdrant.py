"""QdrantVectors: the vector port on a Qdrant server over HTTP (the compose profile).

``QdrantVectors.server(url)`` talks to a Qdrant server with a short timeout, so a down server becomes
the feed's "no vectors" fallback within a request instead of hanging it. (The embedded profile runs
Qdrant's engine in-process instead: ``labcore.adapters.vectors.qdrant_edge``.)

Points are keyed by the post's UUID (other ids map to a stable UUIDv5, ``point_ids``), so
re-upserting a post replaces its point. The payload keeps ``post_id``, ``author_id`` (indexed, for the
"not these authors" filter) and ``created_at``. Collections use cosine distance, so Qdrant stores
vectors normalized; the lab's embeddings are unit vectors already.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException

from labcore.adapters.vectors.base import VectorHit, VectorItem, VectorStore
from labcore.adapters.vectors.point_ids import items_from_records, point_id
from labcore.embeddings import DIM
from labcore.errors import BackendUnavailable

T = TypeVar("T")

# Points per upsert request: bounds the JSON body (~8 KB per 384-dim point) for big backfills.
_UPSERT_CHUNK = 256
_PAYLOAD = ["post_id", "author_id", "created_at"]


class QdrantVectors(VectorStore):
    def __init__(self, client: QdrantClient, collection: str, *, where: str) -> None:
        self.client = client
        self.collection = collection
        self.where = where  # the URL, for messages

    @classmethod
    def server(cls, url: str, collection: str = "posts", timeout: float = 2) -> QdrantVectors:
        """A Qdrant server at ``url``; connecting is lazy, so a down server fails on first use."""
        # check_compatibility would call the server here, at construction; health() does that job.
        client = QdrantClient(url=url, timeout=timeout, check_compatibility=False)  # type: ignore[arg-type]
        return cls(client, collection, where=url)

    # --- plumbing --------------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate qdrant-client failures at the boundary."""
        try:
            yield
        except (ApiException, httpx.HTTPError, ConnectionError, TimeoutError) as exc:
            # ApiException covers HTTP error statuses and transport errors qdrant-client wraps.
            raise BackendUnavailable("vectors", f"Qdrant at {self.where}: {_first_line(exc)}") from exc
        except RuntimeError as exc:  # the client was closed
            raise BackendUnavailable("vectors", f"Qdrant at {self.where}: {exc}") from exc

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
                except ApiException:
                    # Another worker created it between our check and our create: same outcome.
                    if not self.client.collection_exists(self.collection):
                        raise
            # Discovery filters on author_id every request.
            self.client.create_payload_index(
                self.collection,
                "author_id",
                field_schema=models.PayloadSchemaType.KEYWORD,
            )

    def upsert(self, items: Sequence[VectorItem]) -> None:
        points = [
            models.PointStruct(
                id=point_id(item.post_id),
                vector=np.asarray(item.vector, dtype=np.float32).tolist(),
                payload={
                    "post_id": item.post_id,
                    "author_id": item.author_id,
                    "created_at": item.created_at,
                },
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
            VectorHit(
                post_id=p.payload["post_id"],
                score=float(p.score),
                author_id=p.payload["author_id"],
            )
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
        return items_from_records(records)

    def health(self) -> None:
        if not self._call(lambda: self.client.collection_exists(self.collection)):
            raise BackendUnavailable(
                "vectors",
                f"Qdrant at {self.where} has no collection {self.collection!r}",
            )

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"QdrantVectors(server, {self.where!r}, collection={self.collection!r})"


def _first_line(exc: Exception) -> str:
    # ResponseHandlingException wraps the transport error and has no message of its own.
    source = getattr(exc, "source", None)
    text = str(source or exc) or type(source or exc).__name__
    return text.splitlines()[0]

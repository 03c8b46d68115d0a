"""Read-only views inside the running stack, for notebooks.

Notebooks cannot open the runtime's process-owned stores (Qdrant Edge, DuckDB) themselves, and
should not need to know which event log runs, so the API shows them what is inside: mailboxes,
outbox rows, the newest events of a topic, vectors, interest vectors and loaded impressions.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query

from labcore.domain import TOPIC_ENGAGEMENTS, TOPIC_IMPRESSIONS, TOPIC_NEW_POSTS
from labcore.errors import NotFound
from services.api.deps import StackDep

router = APIRouter(prefix="/introspect", tags=["introspect"])
TOPICS = (TOPIC_NEW_POSTS, TOPIC_ENGAGEMENTS, TOPIC_IMPRESSIONS)


@router.get("/mailbox/{user_id}")
def mailbox(user_id: str, stack: StackDep) -> dict[str, Any]:
    """The raw ZSET ``feed:{user_id}``: post ids with their scores (creation times), newest first."""
    entries = stack.mailboxes.entries(user_id)
    return {
        "key": f"feed:{user_id}",
        "built": bool(stack.redis.exists(f"feed:{user_id}:built")),
        "ttl_seconds": stack.redis.ttl(f"feed:{user_id}"),
        "entries": [{"post_id": post_id, "score": score} for post_id, score in entries],
    }


@router.get("/outbox")
def outbox(stack: StackDep, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> dict[str, Any]:
    return {"backlog": stack.store.outbox_backlog(), "rows": stack.store.outbox_recent(limit)}


@router.get("/events/{topic}")
def events(topic: str, stack: StackDep, count: Annotated[int, Query(ge=1, le=500)] = 10) -> list[dict[str, Any]]:
    """The newest events of a topic, oldest first, as the consumers see them."""
    if topic not in TOPICS:
        raise NotFound(f"no topic {topic!r}; topics: {', '.join(TOPICS)}")
    return [asdict(record) for record in stack.events.tail(topic, count)]


@router.get("/vectors")
def vectors(stack: StackDep, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    """Post embeddings as stored in the vector store (for projections); 384 floats each."""
    points = stack.vectors.points(limit)
    return {
        "count": stack.vectors.count(),
        "points": [
            {"post_id": p.post_id, "author_id": p.author_id, "created_at": p.created_at, "vector": p.vector.tolist()}
            for p in points
        ],
    }


@router.get("/vector-index")
def vector_index(stack: StackDep) -> dict[str, Any]:
    """How much of the vector store its HNSW index covers, and the optimize runs so far.

    Only the embedded profile's Qdrant Edge shard builds its index in this process
    (``QdrantEdgeVectors.index_status``); other stores answer with the point count alone.
    """
    status = getattr(stack.vectors, "index_status", None)
    if status is None:
        return {"points": stack.vectors.count()}
    indexer = getattr(stack.vectors, "indexer", None)
    extra = {} if indexer is None else {
        "optimize_after": indexer.after, "optimize_runs": indexer.runs, "optimize_seconds": list(indexer.timings),
    }  # fmt: skip
    return status() | extra


@router.get("/interest/{user_id}")
def interest(user_id: str, stack: StackDep) -> dict[str, Any]:
    """The user's interest vector (computed from follows or popular posts on first use)."""
    stack.store.get_user(user_id)
    vector = stack.interests.for_user(user_id, stack.store, stack.vectors)
    return {"user_id": user_id, "vector": None if vector is None else vector.tolist()}


@router.get("/impressions")
def impressions(stack: StackDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> dict[str, Any]:
    """The newest impressions the OLAP store has loaded (embedded profile: DuckDB)."""
    olap = stack.impressions
    recent = getattr(olap, "recent", None)
    if recent is None:
        raise NotFound("this OLAP store is queried in Pinot's own console")
    return {"count": olap.count(), "rows": [asdict(row) for row in recent(limit)]}

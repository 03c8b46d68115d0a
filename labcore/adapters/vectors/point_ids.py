"""What both Qdrant adapters share: how a post becomes a point id, and a point becomes a ``VectorItem``.

Qdrant accepts unsigned integers or UUIDs as point ids; our post ids are UUID strings, but tests and
hand-made data use any string. Those map to a stable UUIDv5, so re-upserting a post replaces its
point. The post id itself travels in the payload.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from labcore.adapters.vectors.base import VectorItem

# Non-UUID post ids become stable UUIDv5 point ids under this namespace.
POINT_NAMESPACE = uuid.UUID("5d0f3c2e-6a43-4d0b-9f1e-2f6f0b7c1a10")


def point_id(post_id: str) -> str:
    """The Qdrant point id of a post: its UUID, or a UUIDv5 of any other id."""
    try:
        return str(uuid.UUID(post_id))
    except ValueError:
        return str(uuid.uuid5(POINT_NAMESPACE, post_id))


def items_from_records(records: Any) -> list[VectorItem]:
    """Qdrant records (server or edge: ``.payload`` and ``.vector``) as items; payload-less ones skipped."""
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

"""The vector port: post embeddings and nearest-neighbour search over them.

Discovery asks "which posts are closest to this user's interest vector, leaving out authors the user
already sees?" — one ``search`` with an author filter. Everything travels as plain dataclasses and
numpy arrays; no backend's point or payload types leave its adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VectorItem:
    """One post's embedding with what search filters and reports on."""

    post_id: str
    vector: np.ndarray  # float32, (384,)
    author_id: str
    created_at: float  # epoch seconds


@dataclass(frozen=True)
class VectorHit:
    post_id: str
    score: float  # cosine similarity, higher is closer
    author_id: str


class VectorStore(ABC):
    """Stores compare by cosine similarity and may keep vectors normalized to unit length."""

    @abstractmethod
    def ensure_collection(self) -> None:
        """Create the collection if it is missing (idempotent; safe to race)."""

    @abstractmethod
    def upsert(self, items: Sequence[VectorItem]) -> None:
        """Insert or replace by post id: replaying the same items changes nothing."""

    @abstractmethod
    def search(
        self, vector: np.ndarray, limit: int, exclude_author_ids: Collection[str] = ()
    ) -> list[VectorHit]:
        """The ``limit`` posts closest to ``vector``, best first, skipping the excluded authors."""

    @abstractmethod
    def vectors(self, post_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by post id; ids that were never embedded are absent."""

    @abstractmethod
    def count(self) -> int:
        """How many posts have a vector."""

    @abstractmethod
    def points(self, limit: int) -> list[VectorItem]:
        """Up to ``limit`` stored items with their vectors (for inspection and 2-D projections)."""

    @abstractmethod
    def health(self) -> None:
        """Raise ``BackendUnavailable("vectors", ...)`` when the store cannot be reached."""

    def close(self) -> None:  # noqa: B027 - optional: most stores hold nothing to release
        """Release the client (the local backend also releases its folder lock)."""

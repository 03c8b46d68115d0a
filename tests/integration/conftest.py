"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors


@pytest.fixture
def vectors(tmp_path: Path) -> Iterator[QdrantEdgeVectors]:
    """A real vector store: a Qdrant Edge shard in a temp folder (the embedded profile's)."""
    store = QdrantEdgeVectors(tmp_path / "qdrant-edge")
    store.ensure_collection()
    yield store
    store.close()

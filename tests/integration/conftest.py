"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labcore.adapters.vectors.qdrant import QdrantVectors


@pytest.fixture
def vectors(tmp_path: Path) -> Iterator[QdrantVectors]:
    """A real vector store: Qdrant local mode in a temp folder, collection ``posts``."""
    store = QdrantVectors.local(tmp_path / "qdrant", "posts")
    store.ensure_collection()
    yield store
    store.close()

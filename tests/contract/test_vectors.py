"""The vector-store contract, on Qdrant local mode and on a Qdrant server.

Local mode always runs. The server runs where ``FEEDLAB_TEST_QDRANT_URL`` points at one (compose,
CI with a Qdrant service); each test gets its own collection there, dropped afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from labcore.engines.process import free_port
from labcore.adapters.vectors.base import VectorItem, VectorStore
from labcore.adapters.vectors.qdrant import QdrantVectors
from labcore.embeddings import DIM
from labcore.errors import BackendUnavailable

QDRANT_URL = os.environ.get("FEEDLAB_TEST_QDRANT_URL")
REQUIRE_SERVERS = os.environ.get("FEEDLAB_REQUIRE_SERVERS") == "1"


def unit(*weights: float) -> np.ndarray:
    """A unit vector whose first coordinates are ``weights`` (the rest zero)."""
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector / np.linalg.norm(vector)


def item(post_id: str, vector: np.ndarray, author_id: str = "alice", created_at: float = 1.0) -> VectorItem:
    return VectorItem(post_id, vector, author_id, created_at)


@pytest.fixture(params=["local", "server"])
def vectors(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    if request.param == "local":
        store = QdrantVectors.local(tmp_path / "qdrant", "posts")
    else:
        if not QDRANT_URL:
            pytest.skip("Qdrant server: set FEEDLAB_TEST_QDRANT_URL (e.g. http://127.0.0.1:6333) to run")
        store = QdrantVectors.server(QDRANT_URL, f"test_{uuid.uuid4().hex[:8]}")
        try:
            store.client.get_collections()
        except Exception as exc:  # noqa: BLE001 - whatever the client says, the server is not there
            message = f"Qdrant at {QDRANT_URL} unreachable: {exc}"
            if REQUIRE_SERVERS:
                pytest.fail(message + " (FEEDLAB_REQUIRE_SERVERS=1: real-server tests must run)")
            pytest.skip(message)
    store.ensure_collection()
    yield store
    if request.param == "server":
        store.client.delete_collection(store.collection)
    store.close()


def test_empty_collection_searches_to_nothing(vectors: VectorStore) -> None:
    assert vectors.count() == 0
    assert vectors.search(unit(1.0), 10) == []
    assert vectors.vectors(["nope"]) == {}
    assert vectors.points(10) == []


def test_search_ranks_by_cosine_similarity(vectors: VectorStore) -> None:
    vectors.upsert(
        [
            item("far", unit(0.0, 1.0)),
            item("near", unit(1.0, 0.2)),
            item("exact", unit(1.0)),
            item("middle", unit(1.0, 1.0)),
        ]
    )
    hits = vectors.search(unit(1.0), 10)
    assert [h.post_id for h in hits] == ["exact", "near", "middle", "far"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[2].score == pytest.approx(float(unit(1.0) @ unit(1.0, 1.0)), abs=1e-5)
    assert [h.post_id for h in vectors.search(unit(1.0), 2)] == ["exact", "near"]


def test_search_leaves_out_excluded_authors(vectors: VectorStore) -> None:
    vectors.upsert(
        [
            item("a1", unit(1.0), "alice"),
            item("b1", unit(1.0, 0.1), "bob"),
            item("c1", unit(1.0, 0.3), "carol"),
        ]
    )
    hits = vectors.search(unit(1.0), 10, exclude_author_ids=["alice", "carol"])
    assert [(h.post_id, h.author_id) for h in hits] == [("b1", "bob")]
    assert [h.post_id for h in vectors.search(unit(1.0), 10, exclude_author_ids={"nobody"})] == ["a1", "b1", "c1"]


def test_exclusion_still_fills_the_limit_when_excluded_authors_own_the_nearest_posts(vectors: VectorStore) -> None:
    rng = np.random.default_rng(0)
    query = unit(1, 0, 0)
    # 200 posts by "prolific" right next to the query, 30 by others further away
    near = [item(f"p{i}", query + 0.01 * rng.standard_normal(384), "prolific") for i in range(200)]
    far = [item(f"o{i}", unit(1, 1, 0) + 0.01 * rng.standard_normal(384), f"other{i}") for i in range(30)]
    vectors.upsert([VectorItem(i.post_id, i.vector / np.linalg.norm(i.vector), i.author_id, 1.0) for i in near + far])
    hits = vectors.search(query, 20, exclude_author_ids={"prolific"})
    assert len(hits) == 20 and all(hit.author_id != "prolific" for hit in hits)


def test_vectors_round_trip_and_skip_unknown_ids(vectors: VectorStore) -> None:
    post_a, post_b = str(uuid.uuid4()), "not-a-uuid"  # real post ids are UUIDs; others still work
    vectors.upsert([item(post_a, unit(0.3, 0.4, 0.5)), item(post_b, unit(0.0, 0.0, 1.0))])
    got = vectors.vectors([post_a, post_b, "never-embedded"])
    assert set(got) == {post_a, post_b}
    assert got[post_a].dtype == np.float32 and got[post_a].shape == (DIM,)
    np.testing.assert_allclose(got[post_a], unit(0.3, 0.4, 0.5), atol=1e-6)
    np.testing.assert_allclose(got[post_b], unit(0.0, 0.0, 1.0), atol=1e-6)


def test_upsert_is_idempotent_and_replaces(vectors: VectorStore) -> None:
    batch = [item(f"p{i}", unit(1.0, float(i))) for i in range(5)]
    vectors.upsert(batch)
    vectors.upsert(batch)  # a replayed batch
    assert vectors.count() == 5
    vectors.upsert([item("p0", unit(0.0, 0.0, 1.0), "bob", 9.0)])  # the same post, re-embedded
    assert vectors.count() == 5
    np.testing.assert_allclose(vectors.vectors(["p0"])["p0"], unit(0.0, 0.0, 1.0), atol=1e-6)
    assert vectors.search(unit(0.0, 0.0, 1.0), 1)[0].author_id == "bob"


def test_points_returns_items_with_payload(vectors: VectorStore) -> None:
    vectors.upsert([item("p1", unit(1.0), "alice", 10.5), item("p2", unit(0.0, 1.0), "bob", 20.0)])
    points = {p.post_id: p for p in vectors.points(10)}
    assert set(points) == {"p1", "p2"}
    assert (points["p2"].author_id, points["p2"].created_at) == ("bob", 20.0)
    np.testing.assert_allclose(points["p1"].vector, unit(1.0), atol=1e-6)
    assert len(vectors.points(1)) == 1


def test_ensure_collection_twice_keeps_the_data(vectors: VectorStore) -> None:
    vectors.upsert([item("p1", unit(1.0))])
    vectors.ensure_collection()
    assert vectors.count() == 1
    vectors.health()


@pytest.mark.parametrize("call", ["ensure_collection", "search", "upsert", "vectors", "count", "health"])
def test_unreachable_server_is_backend_unavailable_quickly(call: str) -> None:
    down = QdrantVectors.server(f"http://127.0.0.1:{free_port()}", "posts", timeout=2)
    calls = {
        "ensure_collection": down.ensure_collection,
        "search": lambda: down.search(unit(1.0), 5),
        "upsert": lambda: down.upsert([item("p", unit(1.0))]),
        "vectors": lambda: down.vectors(["p"]),
        "count": down.count,
        "health": down.health,
    }
    start = time.perf_counter()
    with pytest.raises(BackendUnavailable, match="vectors") as raised:
        calls[call]()
    assert time.perf_counter() - start < 2.5
    assert raised.value.component == "vectors" and raised.value.__cause__ is not None


def test_missing_collection_is_backend_unavailable(tmp_path: Path) -> None:
    store = QdrantVectors.local(tmp_path / "qdrant", "never-created")
    with pytest.raises(BackendUnavailable, match="vectors"):
        store.search(unit(1.0), 5)
    with pytest.raises(BackendUnavailable, match="no collection"):
        store.health()
    store.close()


def test_local_folder_has_one_owner(tmp_path: Path) -> None:
    owner = QdrantVectors.local(tmp_path / "qdrant", "posts")
    with pytest.raises(BackendUnavailable, match="owned by another"):
        QdrantVectors.local(tmp_path / "qdrant", "posts")
    owner.close()
    reopened = QdrantVectors.local(tmp_path / "qdrant", "posts")  # released on close
    reopened.close()


def test_local_mode_persists_across_reopen(tmp_path: Path) -> None:
    store = QdrantVectors.local(tmp_path / "qdrant", "posts")
    store.ensure_collection()
    store.upsert([item("p1", unit(1.0))])
    store.close()
    reopened = QdrantVectors.local(tmp_path / "qdrant", "posts")
    assert reopened.count() == 1
    reopened.close()

"""The vector-store contract, on Qdrant Edge (in-process), on a Qdrant server and on the in-memory fake
of ``labcore.testing``.

Qdrant Edge and the fake always run (the edge in a temp folder). The server runs where ``FEEDLAB_TEST_QDRANT_URL`` points at
one (compose, CI with a Qdrant service); each test gets its own collection there, dropped afterwards.
The edge-only obligations (one owner per shard, the WAL across close and SIGKILL, the background
index) follow the shared cases.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from labcore.adapters.vectors.base import VectorItem, VectorStore
from labcore.adapters.vectors.qdrant import QdrantVectors
from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors
from labcore.embeddings import DIM
from labcore.engines.process import free_port
from labcore.errors import BackendUnavailable
from labcore.testing import MemoryVectors
from tests.helpers import unit

QDRANT_URL = os.environ.get("FEEDLAB_TEST_QDRANT_URL")
REQUIRE_SERVERS = os.environ.get("FEEDLAB_REQUIRE_SERVERS") == "1"


def item(post_id: str, vector: np.ndarray, author_id: str = "alice", created_at: float = 1.0) -> VectorItem:
    return VectorItem(post_id, vector, author_id, created_at)


@pytest.fixture(params=["edge", "server", "memory"])
def vectors(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    store: VectorStore
    if request.param == "edge":
        store = QdrantEdgeVectors(tmp_path / "edge")
    elif request.param == "memory":
        store = MemoryVectors()
    else:
        if not QDRANT_URL:
            # Not an engine labcore.engines can start: every Qdrant server release needs git forks
            # and a newer Rust than crates.io's toolchain here, so it cannot be built from the registries.
            pytest.skip(
                "Qdrant server: cannot be built from the package registries (its releases need git forks"
                " and Rust >= 1.97); set FEEDLAB_TEST_QDRANT_URL (e.g. http://127.0.0.1:6333) to run"
            )
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
    if isinstance(store, QdrantVectors):
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


def test_exclusion_still_fills_the_limit_when_excluded_authors_own_the_nearest_posts(
    vectors: VectorStore,
) -> None:
    rng = np.random.default_rng(0)
    query = unit(1, 0, 0)
    # 200 posts by "prolific" right next to the query, 30 by others further away
    near = [item(f"p{i}", query + 0.01 * rng.standard_normal(384), "prolific") for i in range(200)]
    far = [item(f"o{i}", unit(1, 1, 0) + 0.01 * rng.standard_normal(384), f"other{i}") for i in range(30)]
    vectors.upsert([VectorItem(i.post_id, i.vector / np.linalg.norm(i.vector), i.author_id, 1.0) for i in near + far])
    hits = vectors.search(query, 20, exclude_author_ids={"prolific"})
    assert len(hits) == 20 and all(hit.author_id != "prolific" for hit in hits)


def test_vectors_round_trip_and_skip_unknown_ids(vectors: VectorStore) -> None:
    post_a, post_b = (
        str(uuid.uuid4()),
        "not-a-uuid",
    )  # real post ids are UUIDs; others still work
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


def test_excluded_authors_never_returned_even_when_they_hold_every_nearest_point(
    vectors: VectorStore,
) -> None:
    """The author filter runs inside the engine: excluded authors own the 500 nearest points, and
    the 10 returned are still the nearest of everyone else, in order."""
    rng = np.random.default_rng(1)
    query = unit(1.0)
    crowd = [f"crowd{i}" for i in range(50)]
    near = [
        item(
            f"n{i}",
            _unit(query + 0.05 * rng.standard_normal(DIM).astype(np.float32)),
            crowd[i % 50],
        )
        for i in range(500)
    ]
    others = [
        item(
            f"o{i}",
            _unit(unit(1.0, 1.0 + i / 100) + 0.01 * rng.standard_normal(DIM).astype(np.float32)),
            f"o{i}",
        )
        for i in range(40)
    ]
    vectors.upsert(near + others)
    hits = vectors.search(query, 10, exclude_author_ids=crowd)
    assert all(hit.author_id not in crowd for hit in hits)
    best = sorted(others, key=lambda it: -float(it.vector @ query))[:10]
    assert [hit.post_id for hit in hits] == [it.post_id for it in best]


def test_a_down_memory_store_is_backend_unavailable() -> None:
    store = MemoryVectors(down=True)
    for call in (store.health, lambda: store.search(unit(1.0), 5), lambda: store.upsert([item("p", unit(1.0))])):
        with pytest.raises(BackendUnavailable, match="vectors"):
            call()


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


# --- Qdrant Edge only -------------------------------------------------------------------------------


def test_edge_shard_has_one_owner(tmp_path: Path) -> None:
    owner = QdrantEdgeVectors(tmp_path / "edge")
    with pytest.raises(BackendUnavailable, match="owned by another") as raised:
        QdrantEdgeVectors(tmp_path / "edge")
    assert raised.value.__cause__ is not None
    owner.close()
    QdrantEdgeVectors(tmp_path / "edge").close()  # released on close


def test_edge_reopen_after_close_keeps_every_point_and_the_author_index(
    tmp_path: Path,
) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge")
    store.upsert([item(f"p{i}", unit(1.0, float(i)), f"a{i % 3}", float(i)) for i in range(600)])
    store.close()
    reopened = QdrantEdgeVectors(tmp_path / "edge")
    assert reopened.count() == 600
    np.testing.assert_allclose(reopened.vectors(["p7"])["p7"], unit(1.0, 7.0), atol=1e-6)
    assert {h.author_id for h in reopened.search(unit(1.0), 50, exclude_author_ids={"a0", "a1"})} == {"a2"}
    reopened.close()


def test_edge_calls_after_close_are_backend_unavailable(tmp_path: Path) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge")
    store.close()
    store.close()  # idempotent
    for call in (
        lambda: store.search(unit(1.0), 5),
        store.count,
        store.health,
        lambda: store.upsert([item("p", unit(1.0))]),
    ):
        with pytest.raises(BackendUnavailable, match="closed"):
            call()


def test_edge_vendor_errors_are_backend_unavailable(tmp_path: Path) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge")
    with pytest.raises(BackendUnavailable, match="dimension") as raised:
        store.search(np.ones(3, dtype=np.float32), 5)
    assert raised.value.component == "vectors" and raised.value.__cause__ is not None
    store.close()


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from labcore.adapters.vectors.base import VectorItem
    from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors

    store = QdrantEdgeVectors(sys.argv[1])
    rng = np.random.default_rng(3)
    for batch in range(5):
        items = [VectorItem(f"b{batch}-{i}", rng.standard_normal(384).astype(np.float32), "w", 1.0) for i in range(200)]
        store.upsert(items)
        print(f"acked {batch}", flush=True)
    time.sleep(60)  # killed here, never closed
    """
)


def test_edge_sigkill_after_upserts_loses_no_acknowledged_point(tmp_path: Path) -> None:
    path = tmp_path / "edge"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert child.stdout is not None
        acked = [child.stdout.readline().strip() for _ in range(5)]
        assert acked == [f"acked {b}" for b in range(5)], acked
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    store = QdrantEdgeVectors(path)  # the dead process's WAL lock is gone with it
    assert store.count() == 1000
    got = store.vectors([f"b{b}-{i}" for b in range(5) for i in range(200)])
    assert len(got) == 1000
    store.close()


def test_edge_unindexed_points_are_searched_exactly(tmp_path: Path) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge", optimize_after=10_000)
    rng = np.random.default_rng(5)
    store.upsert([item(f"p{i}", rng.standard_normal(DIM).astype(np.float32), f"a{i % 40}") for i in range(3000)])
    assert store.index_status()["indexed"] == 0
    for query in rng.standard_normal((5, DIM)).astype(np.float32):
        for excluded in ((), {f"a{i}" for i in range(10)}):
            assert store.search(query, 100, excluded) == store.exact_search(query, 100, excluded)
    store.close()


def test_edge_builds_the_index_in_the_background_once_enough_points_arrive(
    tmp_path: Path,
) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge", optimize_after=1000)
    rng = np.random.default_rng(6)
    matrix = rng.standard_normal((1500, DIM)).astype(np.float32)
    store.upsert([item(f"p{i}", matrix[i]) for i in range(900)])
    assert store.indexer.wait_idle(timeout=0) and store.indexer.runs == 0  # below the threshold
    store.upsert([item(f"p{i}", matrix[i]) for i in range(900, 1500)])
    assert store.indexer.wait_idle(timeout=60)
    assert store.indexer.runs == 1
    status = store.index_status()
    assert status["points"] == 1500 and status["indexed"] >= 1000
    assert store.search(matrix[42], 1)[0].post_id == "p42"  # the indexed segment answers
    store.close()


def test_edge_reopen_indexes_what_an_interrupted_catch_up_left(tmp_path: Path) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge", optimize_after=100_000)
    rng = np.random.default_rng(7)
    store.upsert([item(f"p{i}", rng.standard_normal(DIM).astype(np.float32)) for i in range(1200)])
    store.close()
    reopened = QdrantEdgeVectors(tmp_path / "edge", optimize_after=1000)  # threshold now below what is there
    assert reopened.indexer.wait_idle(timeout=60) and reopened.indexer.runs == 1
    assert reopened.index_status()["indexed"] >= 1000
    reopened.close()


def test_edge_serves_concurrent_writers_and_searchers(tmp_path: Path) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge", optimize_after=800)
    rng = np.random.default_rng(8)
    matrix = rng.standard_normal((2000, DIM)).astype(np.float32)
    errors: list[BaseException] = []

    def write(part: int) -> None:
        try:
            for start in range(part * 1000, part * 1000 + 1000, 50):
                store.upsert([item(f"p{i}", matrix[i], f"a{i % 7}") for i in range(start, start + 50)])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def search() -> None:
        try:
            for i in range(200):
                hits = store.search(matrix[i], 10, exclude_author_ids={"a0"})
                assert all(h.author_id != "a0" for h in hits)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(0,)),
        threading.Thread(target=write, args=(1,)),
    ]
    threads += [threading.Thread(target=search) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.indexer.wait_idle(timeout=60)
    assert store.count() == 2000
    assert store.search(matrix[1234], 1)[0].post_id == "p1234"
    store.close()

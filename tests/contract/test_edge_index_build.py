"""Qdrant Edge index builds (``QdrantEdgeVectors.optimize``): in a child process, on a copy of the shard.

What the store promises: searches keep running while an index is built (the build does not hold this
process's GIL), every update made during a build is in the shard afterwards, a failed build leaves the
live shard as it was, the build dies with the process that started it, and a process killed in the
middle of a swap finds its shard whole on the next open.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import qdrant_edge as edge

from labcore.adapters.vectors import edge_index
from labcore.adapters.vectors.base import VectorItem
from labcore.adapters.vectors.point_ids import point_id
from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors
from labcore.embeddings import DIM
from labcore.errors import BackendUnavailable


def items(prefix: str, matrix: np.ndarray, author: str = "alice") -> list[VectorItem]:
    return [VectorItem(f"{prefix}{i}", row, author, 1.0) for i, row in enumerate(matrix)]


def build_pids(folder: Path) -> list[int]:
    """Processes of ours running an index build of a copy under ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"labcore.adapters.vectors.edge_index" in cmdline and any(str(folder).encode() in a for a in cmdline):
            found.append(int(proc.name))
    return found


def test_searches_run_and_updates_survive_while_the_index_is_built(tmp_path: Path) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge", optimize_after=2000)
    rng = np.random.default_rng(11)
    base = rng.standard_normal((4000, DIM)).astype(np.float32)
    late = rng.standard_normal((300, DIM)).astype(np.float32)
    gaps: list[float] = []
    stop = threading.Event()

    def searcher() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            store.search(base[len(gaps) % len(base)], 10)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            time.sleep(0.002)

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        store.upsert(items("p", base))  # 4000 >= 2000: a background build starts
        build_folder = tmp_path / "edge.index-build"
        deadline = time.monotonic() + 30
        while not build_folder.exists():  # the copy exists: updates from now on are journaled
            assert time.monotonic() < deadline, "no build started"
            time.sleep(0.001)
        store.upsert(items("late", late, "bob"))  # new points
        store.upsert([VectorItem("p7", base[7], "carol", 2.0)])  # a replaced point
        store._update(edge.UpdateOperation.delete_points([point_id("p8"), point_id("late9")]))
        assert store.indexer.running, "the build ended before the updates: they did not test the journal"
        assert store.indexer.wait_idle(timeout=120)
    finally:
        stop.set()
        thread.join()
    [build_seconds] = store.indexer.timings
    assert max(gaps) < build_seconds / 5, (max(gaps), build_seconds)
    assert len(gaps) > 20  # the searcher did run during the build

    status = store.index_status()
    assert status["points"] == 4000 + 300 - 2
    assert status["indexed"] >= 4000 - 1  # the copy's points (p8 deleted since)
    got = store.vectors(["p0", "p8", "late0", "late9", "late299"])
    assert set(got) == {"p0", "late0", "late299"}
    assert store.search(late[5], 1)[0].post_id == "late5"
    assert store.search(base[7], 1)[0].author_id == "carol"
    assert "p8" not in {h.post_id for h in store.search(base[8], 5)}
    store.close()

    reopened = QdrantEdgeVectors(tmp_path / "edge", optimize_after=2000)  # the swapped-in shard is durable
    assert reopened.count() == 4000 + 300 - 2
    assert reopened.search(base[7], 1)[0].author_id == "carol"
    reopened.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge", "edge.lock"]  # no build left behind


def test_a_failed_build_leaves_the_live_shard_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge", optimize_after=500)
    monkeypatch.setattr(edge_index, "_command", lambda folder: [sys.executable, "-c", "raise SystemExit(3)"])
    rng = np.random.default_rng(12)
    matrix = rng.standard_normal((800, DIM)).astype(np.float32)
    store.upsert(items("p", matrix))
    assert store.indexer.wait_idle(timeout=60)
    assert store.indexer.runs == 0  # the background build failed (logged) ...
    with pytest.raises(BackendUnavailable, match="exit 3"):
        store.optimize()  # ... and a direct one says why
    assert store.index_status() == {"points": 800, "indexed": 0, "segments": 1}
    assert store.search(matrix[3], 1)[0].post_id == "p3"
    monkeypatch.undo()
    assert store.optimize()  # the next one works
    assert store.index_status()["indexed"] == 800
    store.close()


_PARENT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from labcore.adapters.vectors.base import VectorItem
    from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors

    store = QdrantEdgeVectors(sys.argv[1], optimize_after=1000)
    rng = np.random.default_rng(13)
    store.upsert([VectorItem(f"p{i}", rng.standard_normal(384).astype(np.float32), "a", 1.0) for i in range(20000)])
    print("upserted", flush=True)
    store.optimize()  # killed while the child builds
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the death signal is Linux's PR_SET_PDEATHSIG")
def test_the_build_dies_with_its_parent(tmp_path: Path) -> None:
    path = tmp_path / "edge"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "upserted"
        deadline = time.monotonic() + 60
        while not (children := build_pids(tmp_path)):
            assert time.monotonic() < deadline and parent.poll() is None, "no build started"
            time.sleep(0.01)
        # Past its imports (~0.6 CPU-s) and into the build (many CPU-s at 20,000 points): the death
        # signal is armed. (A parent that dies earlier is test_the_child_exits_when_its_parent_is_already_gone.)
        child = psutil.Process(children[0])
        while sum(child.cpu_times()[:2]) < 1.5:
            assert time.monotonic() < deadline, "the build never got going"
            time.sleep(0.05)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    # The build has seconds of work left; an orphan would still be running well after this.
    deadline = time.monotonic() + 2
    while build_pids(tmp_path):
        assert time.monotonic() < deadline, f"build {children} outlived its parent"
        time.sleep(0.05)
    store = QdrantEdgeVectors(path, optimize_after=100_000)  # and the shard is whole
    assert store.count() == 20000
    store.close()
    assert not (tmp_path / "edge.index-build").exists()  # the next open cleared the dead build's copy


def test_a_swap_cut_short_by_a_crash_keeps_the_shard_as_it_was(tmp_path: Path) -> None:
    store = QdrantEdgeVectors(tmp_path / "edge")
    rng = np.random.default_rng(14)
    matrix = rng.standard_normal((300, DIM)).astype(np.float32)
    store.upsert(items("p", matrix))
    store.close()
    # What a SIGKILL between the swap's renames leaves: the live folder set aside, the built copy
    # (here: a shard missing the last updates) in its place.
    partial = QdrantEdgeVectors(tmp_path / "built")
    partial.upsert(items("p", matrix[:10]))
    partial.close()
    (tmp_path / "edge").rename(tmp_path / "edge.index-old")
    (tmp_path / "built").rename(tmp_path / "edge")
    store = QdrantEdgeVectors(tmp_path / "edge")
    assert store.count() == 300
    assert not (tmp_path / "edge.index-old").exists()
    store.close()


def test_a_second_owner_does_not_repair_a_shard_in_use(tmp_path: Path) -> None:
    owner = QdrantEdgeVectors(tmp_path / "edge")
    owner.upsert(items("p", np.eye(3, DIM, dtype=np.float32)))
    (tmp_path / "edge.index-build").mkdir()  # as if a build were copying
    with pytest.raises(BackendUnavailable, match="owned by another"):
        QdrantEdgeVectors(tmp_path / "edge")
    assert (tmp_path / "edge.index-build").exists()  # left alone
    assert owner.count() == 3
    owner.close()


def test_the_child_exits_when_its_parent_is_already_gone(tmp_path: Path) -> None:
    # Told that its parent is pid 1 (it is this process): as if the parent died before it started.
    code = subprocess.run(
        [sys.executable, "-m", "labcore.adapters.vectors.edge_index", str(tmp_path), "1"],
        capture_output=True,
        text=True,
    )
    assert code.returncode != 0 and "is gone" in code.stderr
    assert os.listdir(tmp_path) == []  # it touched nothing

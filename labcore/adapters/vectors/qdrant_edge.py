"""QdrantEdgeVectors: the vector port on Qdrant Edge — Qdrant's own engine, in-process (embedded profile).

``qdrant-edge-py`` runs Qdrant's segment, HNSW, payload-index and WAL code inside this process: one
*shard* in a folder, no server, no collections. What this adapter adds:

* **One owner.** A shard opens once per process (a lock file beside its folder, and the engine's own
  WAL lock): ``create`` for a new folder, ``load`` for an existing one, ``close()`` releases it. A second
  open raises ``BackendUnavailable``.
* **Ids.** Points are keyed by ``point_id(post_id)`` (the UUID, or a UUIDv5 of any other id), so
  re-upserting a post replaces its point; the payload keeps ``post_id``, ``author_id`` and
  ``created_at``. A keyword index on ``author_id`` makes ``exclude_author_ids`` a ``must_not`` filter
  evaluated inside the search — no over-fetching.
* **The HNSW index when it pays.** Nothing in the engine builds it in the background: new points sit
  in a plain segment that is searched exactly (correct, linear in its size). The engine's indexing
  threshold is set to ``optimize_after`` points, and once that many were upserted since the last build,
  a background thread calls ``optimize()``.
* **Builds that do not block queries.** Every call into the binding holds the GIL for its whole
  duration (measured: a pure Python thread makes no progress during ``update``, ``query`` or
  ``optimize``), and the engine's ``optimize()`` takes seconds at 20,000 points. So ``optimize()`` never
  runs it in this process: it flushes the shard and copies its folder (writers wait for the copy,
  searches do not), a child process indexes the copy (``edge_index``), and the built copy is swapped
  in under a short pause of every call (close, rename, load, then re-apply the upserts made since the
  copy, kept in order in memory). A failed build leaves the live shard untouched. The swap is a pair of
  renames with the old folder set aside until the new one holds everything; a process killed
  mid-swap gets the old folder back on the next open (``_recover``).
* **Threads.** Calls into the shard take a lock of ours (free, since the GIL serializes them anyway)
  so none lands on a shard being swapped. Upserts go in chunks so one big batch does not stall
  searches for its whole length.

Vendor errors (the binding raises plain ``Exception``) become ``BackendUnavailable("vectors", ...)``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import qdrant_edge as edge

from labcore.adapters.vectors.base import VectorHit, VectorItem, VectorStore
from labcore.adapters.vectors.edge_index import IndexBuild
from labcore.adapters.vectors.point_ids import items_from_records, point_id
from labcore.embeddings import DIM
from labcore.errors import BackendUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# Points per update call: each call holds the GIL (~10 ms per 256 points), so searches interleave.
_UPSERT_CHUNK = 256
_PAYLOAD = ["post_id", "author_id", "created_at"]
_CONFIG_FILE = "edge_config.json"  # written by EdgeShard.create: its presence means "load"
# Siblings of the shard's folder (same filesystem, so renames are atomic):
_LOCK = ".lock"  # held (flock) by the owning store
_BUILD = ".index-build"  # the copy a child process indexes
_ASIDE = ".index-old"  # the live folder, set aside during a swap: present = the swap did not finish
_TRASH = ".index-trash"  # the old folder once a swap finished, being deleted
DEFAULT_OPTIMIZE_AFTER = 5000


def indexing_threshold_kb(points: int) -> int:
    """The engine's indexing threshold (KB of float32 vectors) that ``points`` vectors reach."""
    return max(1, points * DIM * 4 // 1024)


class QdrantEdgeVectors(VectorStore):
    """The shard under ``path``, opened now; ``hnsw_ef`` is the search beam (None: engine default)."""

    def __init__(
        self,
        path: Path,
        *,
        hnsw_ef: int | None = None,
        optimize_after: int = DEFAULT_OPTIMIZE_AFTER,
    ) -> None:
        self.path = Path(path)
        self.hnsw_ef = hnsw_ef
        self.optimize_after = optimize_after
        self._owner = self._lock_owner()
        self._recover()
        self._lock = threading.Lock()  # every call into the shard, and the swap
        self._writes = threading.Lock()  # updates, and the copy (taken before _lock)
        self._journal: list[Any] | None = None  # updates since the copy a build works on
        self._building = threading.Lock()  # one build at a time
        self._build: IndexBuild | None = None
        self._closing = False
        try:
            self._shard: Any = self._open()
        except BaseException:
            self._owner.close()
            raise
        self.indexer = _Indexer(self.optimize, optimize_after)
        self._create_author_index()
        status = self.index_status()
        if status["points"] - status["indexed"] >= optimize_after:
            self.indexer.request()  # a catch-up that was cut short: index what it left

    @property
    def hnsw_ef(self) -> int | None:
        return self._hnsw_ef

    @hnsw_ef.setter
    def hnsw_ef(self, value: int | None) -> None:
        """Settable, so the benchmark can sweep it on one open shard."""
        self._hnsw_ef = value
        self._params = edge.SearchParams(hnsw_ef=value) if value else None

    # --- plumbing --------------------------------------------------------------------------------
    def _config(self) -> Any:
        return edge.EdgeConfig(
            vectors=edge.EdgeVectorParams(size=DIM, distance=edge.Distance.Cosine),
            optimizers=edge.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb(self.optimize_after)),
        )

    def _open(self) -> Any:
        """Load the shard in ``path``, or create it there."""
        try:
            if (self.path / _CONFIG_FILE).is_file():
                return edge.EdgeShard.load(str(self.path), self._config())
            self.path.mkdir(parents=True, exist_ok=True)
            return edge.EdgeShard.create(str(self.path), self._config())
        except Exception as exc:  # noqa: BLE001 - the binding raises plain Exception for everything
            if type(exc) is not Exception:
                raise
            if "WAL" in str(exc) and "WouldBlock" in str(exc):
                raise BackendUnavailable(
                    "vectors",
                    f"Qdrant Edge shard {self.path} is owned by another process",
                ) from exc
            raise BackendUnavailable("vectors", f"Qdrant Edge shard {self.path}: {exc}") from exc

    def _sibling(self, suffix: str) -> Path:
        return self.path.with_name(self.path.name + suffix)

    def _lock_owner(self) -> Any:
        """Hold the lock file beside the folder: only its owner may open, swap or repair the shard."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self._sibling(_LOCK), "a+b")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise BackendUnavailable("vectors", f"Qdrant Edge shard {self.path} is owned by another process") from exc
        return handle

    def _recover(self) -> None:
        """Finish what a process killed during an index build left: the live folder is whole after it.

        A folder set aside means its swap never finished, so it is the live shard (what sits in
        ``path`` then is the built copy, possibly without the updates re-applied to it).
        """
        aside = self._sibling(_ASIDE)
        if aside.exists():
            log.warning("qdrant-edge: an index swap of %s did not finish; keeping the shard as it was", self.path)
            shutil.rmtree(self.path, ignore_errors=True)
            os.rename(aside, self.path)
        for leftover in (self._sibling(_BUILD), self._sibling(_TRASH)):
            shutil.rmtree(leftover, ignore_errors=True)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            # Plain Exception is the binding's error type; subclasses (TypeError, ...) are our bugs.
            if type(exc) is not Exception:
                raise
            raise BackendUnavailable("vectors", f"Qdrant Edge shard {self.path}: {exc}") from exc

    def _call(self, fn: Callable[[Any], T]) -> T:
        with self._lock, self._errors():
            return fn(self._live())

    def _live(self) -> Any:
        if self._shard is None:
            raise BackendUnavailable("vectors", f"Qdrant Edge shard {self.path} is closed")
        return self._shard

    def _update(self, operation: Any) -> None:
        with self._writes, self._lock:
            with self._errors():
                self._live().update(operation)
            if self._journal is not None:  # a build is copying or indexing: its copy lacks this
                self._journal.append(operation)

    def _create_author_index(self) -> None:
        # Idempotent: creating an existing index is a no-op in the engine.
        self._update(edge.UpdateOperation.create_field_index("author_id", edge.PayloadSchemaType.Keyword))

    # --- the port --------------------------------------------------------------------------------
    def ensure_collection(self) -> None:
        """The shard exists once opened; this makes sure the author index does too."""
        self._create_author_index()

    def upsert(self, items: Sequence[VectorItem]) -> None:
        for start in range(0, len(items), _UPSERT_CHUNK):
            operation = edge.UpdateOperation.upsert_points(
                [
                    edge.Point(
                        point_id(item.post_id),
                        np.asarray(item.vector, dtype=np.float32),  # type: ignore[arg-type]  # numpy works
                        {"post_id": item.post_id, "author_id": item.author_id, "created_at": item.created_at},
                    )
                    for item in items[start : start + _UPSERT_CHUNK]
                ]
            )
            self._update(operation)
        self.indexer.added(len(items))

    def search(self, vector: np.ndarray, limit: int, exclude_author_ids: Collection[str] = ()) -> list[VectorHit]:
        return self._search(vector, limit, exclude_author_ids, self._params)

    def exact_search(self, vector: np.ndarray, limit: int, exclude_author_ids: Collection[str] = ()) -> list[VectorHit]:
        """``search`` by brute force over every point: the reference recall is measured against."""
        return self._search(vector, limit, exclude_author_ids, edge.SearchParams(exact=True))

    def _search(
        self,
        vector: np.ndarray,
        limit: int,
        exclude_author_ids: Collection[str],
        params: Any,
    ) -> list[VectorHit]:
        if limit <= 0:
            return []
        query_filter = None
        if exclude_author_ids:
            excluded = sorted(set(exclude_author_ids))
            query_filter = edge.Filter(
                must_not=[edge.FieldCondition(key="author_id", match=edge.MatchAny(any=excluded))]
            )
        request = edge.QueryRequest(
            limit=limit,
            query=edge.Query.Nearest(np.asarray(vector, dtype=np.float32)),  # type: ignore[arg-type]  # numpy works
            filter=query_filter,
            with_payload=["post_id", "author_id"],
            params=params,
        )
        points = self._call(lambda s: s.query(request))
        return [
            VectorHit(
                post_id=p.payload["post_id"],
                score=float(p.score),
                author_id=p.payload["author_id"],
            )
            for p in points
            if p.payload
        ]

    def vectors(self, post_ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not post_ids:
            return {}
        ids = list({point_id(p) for p in post_ids})
        records = self._call(lambda s: s.retrieve(ids, ["post_id"], True))
        return {r.payload["post_id"]: np.asarray(r.vector, dtype=np.float32) for r in records if r.payload}

    def count(self) -> int:
        return self._call(lambda s: s.count(edge.CountRequest(exact=True)))

    def points(self, limit: int) -> list[VectorItem]:
        if limit <= 0:
            return []
        records, _next = self._call(
            lambda s: s.scroll(edge.ScrollRequest(limit=limit, with_payload=_PAYLOAD, with_vector=True))
        )
        return items_from_records(records)

    def health(self) -> None:
        self._call(lambda s: s.info())

    def close(self) -> None:
        """Stop the indexer (killing a running build) and release the shard's folder."""
        with self._lock:
            self._closing = True
            build = self._build
        if build is not None:
            build.kill()
        self.indexer.stop()
        with self._building, self._writes, self._lock:
            shard, self._shard = self._shard, None
            if shard is not None:
                with self._errors():
                    shard.close()
        self._owner.close()  # releases the lock file

    # --- the index -------------------------------------------------------------------------------
    def optimize(self) -> bool:
        """Build the HNSW index over unindexed points now; True if anything changed.

        This thread waits for the build, other threads' searches and upserts go on (see the module
        docstring). A failed build raises ``BackendUnavailable`` and leaves the live shard as it was.
        """
        with self._building:
            start = time.perf_counter()
            folder = self._sibling(_BUILD)
            try:
                self._copy_to(folder)
                with self._lock:
                    if self._closing:
                        return False
                    self._build = IndexBuild(folder)
                try:
                    changed = self._build.wait()
                finally:
                    with self._lock:
                        self._build = None
                if changed:
                    self._swap_in(folder)
            except BackendUnavailable:
                if self._closing:  # close() killed the build: nothing to report
                    return False
                raise
            except OSError as exc:  # copying or renaming folders
                raise BackendUnavailable("vectors", f"Qdrant Edge index build of {self.path}: {exc}") from exc
            finally:
                with self._lock:
                    self._journal = None
                shutil.rmtree(folder, ignore_errors=True)
                shutil.rmtree(self._sibling(_TRASH), ignore_errors=True)
        seconds = time.perf_counter() - start
        self.indexer.timings.append(seconds)
        if changed:
            log.info("qdrant-edge: index build took %.1fs: %s", seconds, self.index_status())
        return changed

    def _copy_to(self, folder: Path) -> None:
        """Copy the flushed shard to ``folder``; updates from now on are journaled for the swap."""
        shutil.rmtree(folder, ignore_errors=True)
        with self._writes:  # no update may change the files while they are copied; searches may read
            with self._lock, self._errors():
                self._live().flush()
                self._journal = []
            shutil.copytree(self.path, folder)

    def _catch_up(self, folder: Path) -> int:
        """Re-apply the updates journaled so far to the built copy, while the live shard serves.

        Each update holds the GIL no longer than it did on the live shard, so searches interleave; the
        swap's pause then only re-applies what arrived meanwhile. Returns how many were applied.
        """
        with self._lock:
            journal = list(self._journal or [])
        if journal:
            with self._errors():
                built = edge.EdgeShard.load(str(folder))
                try:
                    for operation in journal:
                        built.update(operation)
                finally:
                    built.close()
        return len(journal)

    def _swap_in(self, folder: Path) -> None:
        """Make the built copy in ``folder`` the live shard, with the journaled updates re-applied."""
        caught_up = self._catch_up(folder)
        aside = self._sibling(_ASIDE)
        with self._writes, self._lock:
            paused = time.perf_counter()
            journal, self._journal = (self._journal or [])[caught_up:], None
            with self._errors():
                self._live().close()
            self._shard = None
            built = None
            try:
                os.rename(self.path, aside)
                os.rename(folder, self.path)
                built = self._open()
                with self._errors():
                    for operation in journal:
                        built.update(operation)
            except BaseException:
                # Put the live shard back as it was (it has every update): only the build is lost.
                if built is not None:
                    built.close()
                if aside.exists():
                    if self.path.exists():
                        os.rename(self.path, folder)
                    os.rename(aside, self.path)
                self._shard = self._open()
                raise
            self._shard = built
            os.rename(aside, self._sibling(_TRASH))  # the swap is done: the old folder is garbage
            log.info(
                "qdrant-edge: swapped the built index in (%d updates re-applied before, %d during) in %.0f ms",
                caught_up, len(journal), 1000 * (time.perf_counter() - paused),
            )

    def index_status(self) -> dict[str, int]:
        """Points, how many of them the HNSW index covers, and segments."""
        info = self._call(lambda s: s.info())
        return {
            "points": info.points_count,
            "indexed": info.indexed_vectors_count,
            "segments": info.segments_count,
        }

    def __repr__(self) -> str:
        return f"QdrantEdgeVectors({str(self.path)!r}, hnsw_ef={self.hnsw_ef}, optimize_after={self.optimize_after})"


class _Indexer:
    """Runs ``optimize`` on a background thread once ``after`` points were added since the last run.

    The thread starts on the first request and lives until ``stop()``. Points added while an optimize
    runs count towards the next one.
    """

    def __init__(self, optimize: Callable[[], bool], after: int) -> None:
        self._optimize = optimize
        self.after = after
        self.runs = 0
        self.timings: list[float] = []  # seconds of every optimize() of the store, background or not
        self._pending = 0
        self._requested = False
        self._running = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()

    def added(self, n: int) -> None:
        with self._cond:
            self._pending += n
            due = self._pending >= self.after
        if due:
            self.request()

    def request(self) -> None:
        """Ask for an optimize soon (e.g. after a bulk ingest); returns at once."""
        with self._cond:
            if self._stopped:
                return
            self._requested = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="qdrant-edge-optimize", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        """A build runs now."""
        return self._running

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no optimize is requested or running; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._requested or self._running), timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped, self._requested = True, False
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._requested or self._stopped)
                if self._stopped:
                    return
                self._requested, self._running, self._pending = False, True, 0
            try:
                self._optimize()
                self.runs += 1
            except BackendUnavailable as exc:  # closed under us, or the engine failed: next request retries
                log.warning("qdrant-edge: background optimize failed: %s", exc)
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()

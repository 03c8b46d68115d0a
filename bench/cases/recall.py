"""Case 7 — discovery quality and speed: the embedded vector store (Qdrant Edge) vs exact search.

Vectors are the medium world's post texts embedded by the lab's model (20,000 × 384; cached under
``build/bench-cache/`` by ``bench.world_embeddings``). They go through ``QdrantEdgeVectors`` at the
shipped settings (``vector_hnsw_ef``, ``vector_optimize_after``) in a temporary folder: the upsert is
timed, then the background index builds it triggers, then one final ``optimize()``. While the
upsert and the background builds run, a second thread searches every 20 ms: its latencies show what
a search waits for during ``optimize()`` (the build runs in a child process; a search waits for the
copy's flush and the swap's short pause, and for the CPU the build takes).

Queries are interest-like: the mean of 8 neighbouring posts (a random post and its 7 nearest).
recall@k is |store top-k ∩ exact top-k| / k, averaged, where exact is ``argsort`` of numpy dot
products over the same matrix; with the author filter (50 excluded authors, the query's nearest
author first) exact is the same over the allowed posts. Latencies: the store's HNSW search, with the
filter, the engine's own exact search (``SearchParams(exact=True)``) and numpy. A sweep over
``hnsw_ef`` shows the recall/latency trade the default was chosen from.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import CaseResult

EF_SWEEP = (None, 16, 32, 64, 128, 256)


def interest_queries(matrix: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    seeds = rng.choice(len(matrix), size=n, replace=False)
    neighbours = np.argsort(-(matrix[seeds] @ matrix.T), axis=1)[:, :8]
    queries = matrix[neighbours].mean(axis=1)
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, 1000 * (time.perf_counter() - t0)


def run(
    *, size: str = "medium", seed: int = 42, queries: int = 100, k: int = 100, quick: bool = False,
    say: Callable[[str], None] = print,
) -> CaseResult:  # fmt: skip
    from bench.world_embeddings import world_embeddings
    from labcore.adapters.vectors.base import VectorItem
    from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors
    from labcore.settings import Settings

    if quick:
        size, queries, k = "tiny", min(queries, 20), min(k, 10)
    started = time.perf_counter()
    world = world_embeddings(size, seed)
    matrix, ids, authors = world.vectors, world.post_ids, np.array(world.author_ids)
    n = len(ids)
    if world.encode_seconds is not None:
        say(f"  recall: encoded {n:,} texts in {world.encode_seconds:.0f}s (cached for next time)")
    settings = Settings()
    rng = np.random.default_rng(seed)
    query_matrix = interest_queries(matrix, queries, rng)
    position = {pid: i for i, pid in enumerate(ids)}

    with tempfile.TemporaryDirectory(prefix="feedlab-bench-recall-") as tmp:
        store = QdrantEdgeVectors(
            Path(tmp) / "edge", hnsw_ef=settings.vector_hnsw_ef, optimize_after=settings.vector_optimize_after
        )
        items = [VectorItem(ids[i], matrix[i], world.author_ids[i], 0.0) for i in range(n)]
        # A searcher beside the ingest, as the API searches while the embedding worker catches up.
        during: list[float] = []  # each search's own latency
        stalls: list[float] = []  # how late each search finished vs "previous one + 20 ms pause"
        stop = threading.Event()

        def searcher() -> None:
            i, last = 0, time.perf_counter()
            while not stop.is_set():
                _, ms = _timed(lambda: store.search(query_matrix[i % queries], k))
                during.append(ms)
                now = time.perf_counter()
                stalls.append(max(0.0, 1000 * (now - last) - 20))
                last, i = now, i + 1
                time.sleep(0.02)  # a thread kept from running (GIL, the swap's pause) shows as a stall

        thread = threading.Thread(target=searcher, daemon=True)
        thread.start()
        t0 = time.perf_counter()
        for start in range(0, n, settings.embedding_batch_size):  # the embedding worker's batches
            store.upsert(items[start : start + settings.embedding_batch_size])
        upsert_s = time.perf_counter() - t0
        store.indexer.wait_idle()
        ingest_s = time.perf_counter() - t0
        background = list(store.indexer.timings)
        after_background = store.index_status()
        stop.set()
        thread.join()
        _, final_ms = _timed(store.optimize)
        status = store.index_status()
        say(
            f"  recall: upsert {n:,} in {upsert_s:.2f}s; background optimize x{len(background)}"
            f" ({', '.join(f'{s:.1f}' for s in background)} s) -> {after_background}; final optimize {final_ms / 1000:.2f}s; {status}"
        )

        def measure(ef: int | None) -> dict[str, float]:
            store.hnsw_ef = ef
            recalls, lat = [], []
            for q in query_matrix:
                hits, ms = _timed(lambda q=q: store.search(q, k))
                lat.append(ms)
                exact = set(np.argsort(-(matrix @ q))[:k].tolist())
                recalls.append(len({position[h.post_id] for h in hits} & exact) / k)
            return {"recall": float(np.mean(recalls)), "p50": statistics.median(lat), "p99": _pct(lat, 0.99)}

        sweep = {str(ef): measure(ef) for ef in EF_SWEEP}
        shipped = measure(settings.vector_hnsw_ef)
        for ef, row in sweep.items():
            say(f"  hnsw_ef={ef}: recall@{k} {row['recall']:.4f}, p50 {row['p50']:.2f} ms, p99 {row['p99']:.2f} ms")

        filtered_recalls, filtered_ms, one_author_ms, engine_exact_ms, numpy_ms = [], [], [], [], []
        unique_authors = sorted(set(world.author_ids))
        for q in query_matrix:
            scores = matrix @ q
            nearest_author = authors[int(np.argmax(scores))]
            others = rng.choice(unique_authors, size=min(49, len(unique_authors) // 2), replace=False)
            excluded = {nearest_author, *others.tolist()}
            hits, ms = _timed(lambda q=q, excluded=excluded: store.search(q, k, exclude_author_ids=excluded))
            filtered_ms.append(ms)
            allowed = np.flatnonzero(~np.isin(authors, list(excluded)))
            exact = {int(i) for i in allowed[np.argsort(-scores[allowed])[:k]]}
            got = {position[h.post_id] for h in hits}
            assert not {h.author_id for h in hits} & excluded
            filtered_recalls.append(len(got & exact) / k)
            _, ms = _timed(lambda q=q, a=nearest_author: store.search(q, k, exclude_author_ids={a}))
            one_author_ms.append(ms)
            _, ms = _timed(lambda q=q: store.exact_search(q, k))
            engine_exact_ms.append(ms)
            _, ms = _timed(lambda q=q: np.argsort(-(matrix @ q))[:k])
            numpy_ms.append(ms)
        store.close()

    recall = shipped["recall"]
    filtered_recall = float(np.mean(filtered_recalls))
    figures = {
        "vectors": n,
        "queries": queries,
        "k": k,
        "hnsw_ef": settings.vector_hnsw_ef,
        "optimize_after": settings.vector_optimize_after,
        "recall_mean": recall,
        "recall_filtered_50_authors": filtered_recall,
        "query_ms_p50": shipped["p50"],
        "query_ms_p99": shipped["p99"],
        "query_exclude_1_author_ms_p50": statistics.median(one_author_ms),
        "query_exclude_1_author_ms_p99": _pct(one_author_ms, 0.99),
        "query_exclude_50_authors_ms_p50": statistics.median(filtered_ms),
        "query_exclude_50_authors_ms_p99": _pct(filtered_ms, 0.99),
        "engine_exact_ms_p50": statistics.median(engine_exact_ms),
        "engine_exact_ms_p99": _pct(engine_exact_ms, 0.99),
        "numpy_exact_ms_p50": statistics.median(numpy_ms),
        "numpy_exact_ms_p99": _pct(numpy_ms, 0.99),
        "upsert_seconds": upsert_s,
        "ingest_with_background_index_seconds": ingest_s,
        "background_optimize_seconds": background,
        "final_optimize_seconds": final_ms / 1000,
        "search_during_ingest_ms_p50": statistics.median(during) if during else None,
        "search_during_ingest_ms_max": max(during) if during else None,
        "searches_during_ingest": len(during),
        "search_stall_during_ingest_ms_max": max(stalls) if stalls else None,
        "index_status": status,
        "ef_sweep": sweep,
    }
    say(
        f"  recall@{k} {recall:.4f} (50 authors excluded: {filtered_recall:.4f}); query p50 {shipped['p50']:.2f}"
        f" / p99 {shipped['p99']:.2f} ms; engine exact p50 {figures['engine_exact_ms_p50']:.2f}"
        f" / p99 {figures['engine_exact_ms_p99']:.2f} ms; numpy exact p50 {figures['numpy_exact_ms_p50']:.2f} ms;"
        f" longest search stall during ingest {figures['search_stall_during_ingest_ms_max'] or 0:.0f} ms"
    )
    result = CaseResult(
        name="recall", title="7 · Discovery quality",
        headline=f"recall@{k} = {recall:.4f}, query p50 {shipped['p50']:.2f} ms vs exact {figures['engine_exact_ms_p50']:.2f} ms ({n:,} real embeddings)",
        ratio=recall, ratio_label=f"recall@{k}", target=0.95, target_label="recall@100 ≥ 0.95",
    ).judge()  # fmt: skip
    result.figures = figures
    result.notes = [
        "Store: QdrantEdgeVectors (qdrant-edge-py, Qdrant's segment/HNSW/WAL code in-process: the embedded"
        " profile) at the shipped settings; exact: numpy dot products over the same float32 matrix, and the"
        " engine's own exact search.",
        "Vectors: the world's post texts embedded by all-MiniLM-L6-v2 (cached in build/bench-cache/);"
        " queries: the mean of 8 neighbouring posts, like an interest vector.",
        "optimize() builds the index in a child process on a copy of the shard and swaps it in under a short"
        " pause (re-applying the upserts made meanwhile): search_stall_during_ingest_ms_max is the longest"
        " wait a search saw during ingest and builds.",
    ]
    result.seconds = time.perf_counter() - started
    return result

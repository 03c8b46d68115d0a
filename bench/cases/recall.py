"""Case 6 — discovery quality: recall@k of the vector store vs exact numpy search, same vectors.

The store is ``QdrantVectors`` in local mode (the embedded profile's vector store, through labcore's
adapter, in a temporary folder). Vectors are synthetic but shaped like the lab's: 384-d unit vectors
in topic clusters (the world has eight topics; we use 64 finer clusters so neighbours are not
trivially one cluster). Queries are drawn from the same distribution and are not in the store.
Exact search is ``argsort`` of dot products over the whole matrix. recall@k is
|store top-k ∩ exact top-k| / k, averaged over the queries.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.report import CaseResult


def clustered_unit_vectors(n: int, rng: np.random.Generator, centers: np.ndarray, spread: float) -> np.ndarray:
    picks = rng.integers(0, len(centers), size=n)
    x = centers[picks] + spread * rng.standard_normal((n, centers.shape[1])).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def run(
    *, vectors: int = 20_000, queries: int = 100, k: int = 100, quick: bool = False, seed: int = 7,
    say: Callable[[str], None] = print,
) -> CaseResult:  # fmt: skip
    from labcore.adapters.vectors.base import VectorItem
    from labcore.adapters.vectors.qdrant import QdrantVectors
    from labcore.embeddings import DIM

    if quick:
        vectors, queries, k = min(vectors, 500), min(queries, 20), min(k, 10)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((64, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    matrix = clustered_unit_vectors(vectors, rng, centers, spread=0.08)
    query_matrix = clustered_unit_vectors(queries, rng, centers, spread=0.08)
    ids = [str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i)) for i in range(vectors)]

    with tempfile.TemporaryDirectory(prefix="feedlab-bench-recall-") as tmp:
        store = QdrantVectors.local(Path(tmp) / "qdrant", "bench")
        store.ensure_collection()
        t0 = time.perf_counter()
        store.upsert([VectorItem(ids[i], matrix[i], f"a{i % 500}", 0.0) for i in range(vectors)])
        upsert_s = time.perf_counter() - t0
        say(f"  recall: {vectors:,} vectors upserted in {upsert_s:.1f}s")
        recalls, store_ms, exact_ms = [], [], []
        position = {pid: i for i, pid in enumerate(ids)}
        for q in query_matrix:
            t0 = time.perf_counter()
            hits = store.search(q, k)
            store_ms.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            exact = np.argsort(-(matrix @ q))[:k]
            exact_ms.append(1000 * (time.perf_counter() - t0))
            found = {position[h.post_id] for h in hits}
            recalls.append(len(found & set(exact.tolist())) / k)
        store.close()
    recall = float(np.mean(recalls))
    say(f"  recall@{k}: {recall:.4f} over {queries} queries ({vectors:,} vectors)")
    result = CaseResult(
        name="recall", title="6 · Discovery quality", headline=f"recall@{k} = {recall:.4f} ({vectors:,} vectors, {queries} queries)",
        ratio=recall, ratio_label=f"recall@{k}", target=None, target_label="— (report)",
    )  # fmt: skip
    result.figures = {
        "vectors": vectors,
        "queries": queries,
        "k": k,
        "recall_mean": recall,
        "recall_min": float(np.min(recalls)),
        "store_query_ms_p50": statistics.median(store_ms),
        "exact_numpy_query_ms_p50": statistics.median(exact_ms),
        "upsert_seconds": upsert_s,
    }
    result.notes = [
        "Store: QdrantVectors.local (Qdrant local mode, the embedded profile) through labcore's adapter;"
        " exact: numpy dot products over the same float32 matrix.",
        "Qdrant's local mode searches by brute force (no HNSW index), so recall is expected to be ~1;"
        " the Qdrant server (compose) builds an HNSW index, where this case would measure the approximation.",
        "Vectors are synthetic 384-d unit vectors in 64 clusters, not model embeddings: embedding 20,000"
        " texts would cost minutes of CPU that case 2 already measures.",
    ]
    result.seconds = time.perf_counter() - started
    return result

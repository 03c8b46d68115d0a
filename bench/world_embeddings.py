"""A world's post embeddings from the real model, cached on disk between benchmark runs.

Encoding the medium world's 20,000 texts takes ~2-3 minutes of CPU on 2 cores; the texts depend only
on (size, seed), so the matrix is kept in ``build/bench-cache/`` (git-ignored) keyed by both, with a
digest of the texts to notice a changed generator or model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / "build" / "bench-cache"


@dataclass(frozen=True)
class WorldEmbeddings:
    post_ids: list[str]
    author_ids: list[str]
    vectors: np.ndarray  # float32 (n, 384), unit rows
    encode_seconds: float | None  # None when read from the cache


def world_embeddings(size: str, seed: int, *, cache_dir: Path | None = CACHE_DIR) -> WorldEmbeddings:
    """Every post of the ``size`` world (``seed``) embedded by the lab's model, in world order."""
    import time

    from labcore.embeddings import MODEL_NAME, Embedder
    from labcore.lab.world import generate_world

    posts = generate_world(size, seed).posts
    texts = [p.content for p in posts]
    digest = hashlib.sha256("\n".join([MODEL_NAME, *texts]).encode()).hexdigest()[:16]
    path = cache_dir / f"embeddings-{size}-seed{seed}-{digest}.npy" if cache_dir else None
    if path is not None and path.is_file():
        vectors = np.load(path)
        seconds = None
    else:
        start = time.perf_counter()
        vectors = Embedder(batch_size=32).encode(texts)
        seconds = time.perf_counter() - start
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
    return WorldEmbeddings([p.post_id for p in posts], [p.author_id for p in posts], vectors, seconds)

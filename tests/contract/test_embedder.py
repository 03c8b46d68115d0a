"""What callers of an embedder rely on, for the real model and for ``labcore.testing.HashEmbedder``.

The workers and the interest handler only need ``encode``: a float32 ``(n, 384)`` array of unit
vectors, the same vector for the same text whatever the batch, and texts that share their words
closer than texts that share none. The fake must keep that shape, or tests written on it would pass
on arrays the workers never get. (Meaning — a kitten close to a cat — is the real model's alone:
tests/integration/test_embeddings.py.)
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from labcore.embeddings import DIM, Embedder
from labcore.testing import HashEmbedder

TEXTS = ["Pasta with slow roasted tomatoes", "Roasted tomatoes on pasta tonight", "The striker scored twice"]


@pytest.fixture(scope="module", params=["model", "hash"])
def embedder(request: pytest.FixtureRequest) -> Any:
    return Embedder(batch_size=2).load() if request.param == "model" else HashEmbedder(batch_size=2)


def test_vectors_are_384_dim_unit_float32(embedder: Any) -> None:
    matrix = embedder.encode(TEXTS)
    assert matrix.shape == (3, DIM) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    empty = embedder.encode([])
    assert empty.shape == (0, DIM) and empty.dtype == np.float32


def test_the_same_text_gets_the_same_vector_in_any_batch(embedder: Any) -> None:
    together = embedder.encode(TEXTS)
    alone = np.stack([embedder.encode([text])[0] for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_shared_words_are_closer_than_none(embedder: Any) -> None:
    pasta, tomatoes, football = embedder.encode(TEXTS)
    assert float(pasta @ tomatoes) > float(pasta @ football) + 0.2


def test_the_fake_pins_exact_vectors_and_counts_calls() -> None:
    pinned = np.zeros(DIM, dtype=np.float32)
    pinned[1] = 2.0
    fake = HashEmbedder({"brand new post": pinned})
    np.testing.assert_allclose(fake.encode(["brand new post"])[0], pinned / 2.0)
    assert fake.calls == 1 and fake.loaded and fake.load() is fake


def test_stats_count_the_calls_the_texts_and_the_time_inside_the_model() -> None:
    # The runtime's /health lists these under "embedder"; the catch-up benchmark divides them by its
    # window (how busy the model was) and by each other (how fast it ran there).
    for embedder in (Embedder(batch_size=2), HashEmbedder(batch_size=2)):
        before = embedder.stats()
        embedder.encode(TEXTS)
        embedder.encode(TEXTS[:1])
        after = embedder.stats()
        assert after["calls"] - before["calls"] == 2
        assert after["texts"] - before["texts"] == 4
        assert after["model_seconds"] > before["model_seconds"]


def test_stats_answer_while_a_call_holds_the_model() -> None:
    # /health must not wait for a catch-up's second-long encode to finish.
    embedder = Embedder(batch_size=2).load()
    with embedder._lock:  # as a running encode holds it
        done = []
        reader = threading.Thread(target=lambda: done.append(embedder.stats()))
        reader.start()
        reader.join(timeout=5)
        assert done and done[0]["calls"] >= 0

"""The real embedding model (all-MiniLM-L6-v2, loaded offline from its package) and the embedding
worker's handler writing into a Qdrant Edge shard. The model loads once for the module (~5 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors
from labcore.domain import TOPIC_NEW_POSTS, PostCreated, Record
from labcore.embeddings import DIM, Embedder
from labcore.errors import BackendUnavailable
from labcore.workers.embedding import EmbeddingHandler

COOKING = [
    "Slow-roasted tomatoes with garlic make the best pasta sauce.",
    "I finally nailed a crusty sourdough loaf after a week of feeding the starter.",
    "Sear the steak in a hot cast iron pan, then baste it with butter and thyme.",
    "This lentil curry with coconut milk and fresh ginger is my new weeknight dinner.",
]
FOOTBALL = [
    "What a goal in the last minute, the striker volleyed it into the top corner!",
    "The referee's offside call ruined the match for the home team.",
    "Our midfield pressed high all game and the coach's tactics paid off.",
    "The transfer window closes tonight and the club still needs a new goalkeeper.",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(batch_size=8).load()


def post_record(post_id: str, author_id: str, content: str, offset: int) -> Record:
    event = PostCreated(post_id, author_id, content, created_at=1_700_000_000.0 + offset, delivery="push")
    return Record(TOPIC_NEW_POSTS, 0, str(offset), event.key, event.to_dict())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_construction_loads_nothing() -> None:
    lazy = Embedder()
    assert not lazy.loaded
    assert lazy.model_path is not None and (lazy.model_path / "modules.json").is_file()


def test_vectors_are_384_dim_unit_float32(embedder: Embedder) -> None:
    matrix = embedder.encode(COOKING + FOOTBALL)
    assert matrix.shape == (8, DIM) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, DIM)


def test_similar_sentences_are_closer_than_unrelated_ones(embedder: Embedder) -> None:
    cat, kitten, market = embedder.encode(
        ["A cat is sleeping on the sofa.", "A kitten naps on the couch.", "The stock market fell sharply today."]
    )
    assert cosine(cat, kitten) > cosine(cat, market) + 0.3
    # Within-topic posts are closer to each other than to the other topic's, on average.
    cooking, football = embedder.encode(COOKING), embedder.encode(FOOTBALL)
    within = (cooking @ cooking.T)[np.triu_indices(4, 1)].mean()
    across = (cooking @ football.T).mean()
    assert within > across + 0.1


def test_batch_encode_equals_one_by_one(embedder: Embedder) -> None:
    texts = COOKING + FOOTBALL
    batched = embedder.encode(texts)
    single = np.vstack([embedder.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_missing_model_is_backend_unavailable_not_random_vectors(tmp_path: Path) -> None:
    broken = Embedder(model_path=tmp_path / "no-model-here")
    with pytest.raises(BackendUnavailable, match="embeddings") as raised:
        broken.encode(["hello"])
    assert raised.value.component == "embeddings"


def test_handler_embeds_a_batch_and_search_finds_the_topic(embedder: Embedder, vectors: QdrantEdgeVectors) -> None:
    records = [post_record(f"cook-{i}", "chef", text, i) for i, text in enumerate(COOKING)]
    records += [post_record(f"ball-{i}", "fan", text, 10 + i) for i, text in enumerate(FOOTBALL)]
    calls: list[list[tuple[PostCreated, np.ndarray]]] = []
    handler = EmbeddingHandler(embedder, vectors, on_embedded=calls.append)

    handler(records)

    assert vectors.count() == 8 and handler.posts == 8
    assert len(calls) == 1 and [e.post_id for e, _ in calls[0]] == [r.value["post_id"] for r in records]
    stored = vectors.vectors(["cook-0"])["cook-0"]
    np.testing.assert_allclose(stored, calls[0][0][1], atol=1e-6)  # the hook sees the stored vector

    query = embedder.encode(["Any tips for baking bread and cooking a good dinner at home?"])[0]
    hits = vectors.search(query, 8)
    assert {h.post_id for h in hits[:4]} == {f"cook-{i}" for i in range(4)}
    assert all(h.author_id == "chef" for h in hits[:4])
    assert {h.author_id for h in vectors.search(query, 8, exclude_author_ids=["chef"])} == {"fan"}


def test_handler_replay_is_idempotent(embedder: Embedder, vectors: QdrantEdgeVectors) -> None:
    records = [post_record(f"cook-{i}", "chef", text, i) for i, text in enumerate(COOKING)]
    handler = EmbeddingHandler(embedder, vectors)
    handler(records)
    before = vectors.vectors([f"cook-{i}" for i in range(4)])
    handler(records + records[:2])  # a replayed batch, with duplicates inside it
    assert vectors.count() == 4
    after = vectors.vectors([f"cook-{i}" for i in range(4)])
    for post_id, vector in before.items():
        np.testing.assert_allclose(after[post_id], vector, atol=1e-6)

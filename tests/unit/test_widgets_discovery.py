"""Notebook 03's widget functions: similarity, exact neighbours, PCA, discovery shares, the like session."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from labcore.testing import FakeLab
from labcore.widgets import discovery
from labcore.widgets.discovery import LikeSession, PostVectors, Projection
from tests.helpers import journey, unit

# --- Embeddings ------------------------------------------------------------------------------------


def test_cosine_matrix_ignores_length_and_sees_direction() -> None:
    sims = discovery.cosine_matrix(np.array([[1.0, 0.0], [5.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]))
    np.testing.assert_allclose(np.diag(sims), 1.0)
    assert sims[0, 1] == pytest.approx(1.0) and sims[0, 2] == pytest.approx(0.0) and sims[0, 3] == pytest.approx(-1.0)
    np.testing.assert_allclose(sims, sims.T)


def test_cosine_matrix_refuses_a_zero_vector() -> None:
    with pytest.raises(ValueError, match="zero vector"):
        discovery.cosine_matrix(np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_similarity_heatmap_labels_every_row() -> None:
    figure = discovery.similarity_heatmap(["a", "b" * 50], np.eye(2))
    heatmap = figure.data[0]
    assert list(heatmap.x) == ["a", "b" * 37 + "..."] and np.asarray(heatmap.z).shape == (2, 2)


def test_post_vectors_from_points_marks_posts_outside_the_world_unknown() -> None:
    points = [{"post_id": "p1", "vector": [1.0, 0.0]}, {"post_id": "p2", "vector": [0.0, 1.0]}]
    posts = PostVectors.from_points(points, {"p1": "cooking"})
    assert posts.topics == ["cooking", discovery.UNKNOWN_TOPIC] and len(posts) == 2
    np.testing.assert_array_equal(posts.vector("p2"), [0.0, 1.0])
    assert posts.matrix.dtype == np.float32


def test_post_vectors_need_points() -> None:
    with pytest.raises(ValueError, match="no vectors"):
        PostVectors.from_points([], {})


def test_topic_cohesion_compares_same_topic_pairs_with_the_rest() -> None:
    posts = PostVectors(
        ["a1", "a2", "b1", "b2", "x"],
        np.stack([unit(1, 0.1), unit(1, -0.1), unit(0.1, 1), unit(-0.1, 1), unit(1, 1)]),
        ["a", "a", "b", "b", discovery.UNKNOWN_TOPIC],
    )
    cohesion = posts.topic_cohesion()
    assert cohesion["same_topic"] == pytest.approx(float(unit(1, 0.1) @ unit(1, -0.1)))
    assert cohesion["different_topic"] < 0.3 < cohesion["same_topic"]


def test_nearest_is_exact_and_sorted() -> None:
    matrix = np.stack([unit(1, 0), unit(0, 1), unit(1, 1), unit(-1, 0)])
    hits = discovery.nearest(matrix, 2 * unit(2.0, 0.1), k=3)  # any length: nearest normalizes
    assert [i for i, _ in hits] == [0, 2, 1]
    assert hits[0][1] == pytest.approx(float(unit(2, 0.1) @ unit(1, 0)))
    assert len(discovery.nearest(matrix, unit(1.0), k=10)) == 4


# --- PCA -------------------------------------------------------------------------------------------


def test_projection_recovers_a_plane_hidden_in_many_dimensions() -> None:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(50, 2)))[0].T  # two orthonormal directions in 50-d
    flat = rng.normal(size=(200, 2)) * [3.0, 1.0]
    matrix = flat @ basis + 0.01 * rng.normal(size=(200, 50)) + 5.0
    projection = Projection.fit(matrix)
    assert projection.explained[0] > projection.explained[1] > 0.05 and sum(projection.explained) > 0.99
    np.testing.assert_allclose(projection.components @ projection.components.T, np.eye(2), atol=1e-9)
    coords = projection.transform(matrix)
    assert coords.shape == (200, 2)
    # the 2-D coordinates keep the distances of the plane (up to rotation and reflection)
    dist_2d = np.linalg.norm(coords[0] - coords[1])
    dist_plane = np.linalg.norm(flat[0] - flat[1])
    assert dist_2d == pytest.approx(dist_plane, rel=0.02)
    assert projection.transform(matrix[0]).shape == (1, 2)


def test_projection_signs_are_fixed_so_the_picture_is_stable() -> None:
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(30, 5))
    for row in Projection.fit(matrix).components:
        assert row[np.argmax(np.abs(row))] > 0
    np.testing.assert_array_equal(Projection.fit(matrix).components, Projection.fit(matrix.copy()).components)


def test_projection_needs_three_rows() -> None:
    with pytest.raises(ValueError):
        Projection.fit(np.eye(2))


def test_projection_figure_has_a_trace_per_topic_the_liked_ring_and_the_path() -> None:
    posts = PostVectors(
        ["a", "b", "c", "d"], np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1), unit(1, 1, 0)]),
        ["x", "y", "x", discovery.UNKNOWN_TOPIC],
    )  # fmt: skip
    projection = Projection.fit(posts.matrix)
    figure = discovery.projection_figure(posts, projection, [unit(1, 0, 0), unit(1, 1, 1)], highlight=["b"])
    names = [trace.name for trace in figure.data]
    assert names == [discovery.UNKNOWN_TOPIC, "x", "y", "liked", "interest vector"]
    assert list(figure.data[-1].text) == ["start", "1"] and list(figure.data[-1].marker.symbol) == ["circle", "star"]
    assert [trace.name for trace in discovery.projection_figure(posts, projection).data] == names[:3]


# --- Discovery shares ------------------------------------------------------------------------------


JOURNEYS = [
    journey("s1", "social", retrieval_score=1.7e9),
    journey("d1", "discovery", retrieval_score=0.9),
    journey("d2", "discovery", retrieval_score=0.5),
    journey("d3", "discovery", retrieval_score=0.7),
    journey("d4", "discovery", retrieval_score=0.3),
]
TOPICS = {"s1": "cooking", "d1": "travel", "d2": "cooking", "d3": "travel"}


def test_discovery_top_keeps_discovery_candidates_by_similarity() -> None:
    assert [j["post_id"] for j in discovery.discovery_top(JOURNEYS, k=3)] == ["d1", "d3", "d2"]


@pytest.mark.parametrize(
    ("topic", "k", "share"),
    [("travel", 10, 0.5), ("cooking", 10, 0.25), ("travel", 2, 1.0), ("music", 10, 0.0)],
)
def test_topic_share_of_the_top_k(topic: str, k: int, share: float) -> None:
    assert discovery.topic_share(JOURNEYS, TOPICS, topic, k) == pytest.approx(share)


def test_topic_counts_names_posts_outside_the_world_unknown() -> None:
    assert discovery.topic_counts(JOURNEYS, TOPICS) == Counter(travel=2, cooking=1, unknown=1)


def test_topic_share_without_discovery_is_zero() -> None:
    assert discovery.topic_share([journey("s1", "social", retrieval_score=1.0)], TOPICS, "cooking") == 0.0


def test_discovery_frame_shows_missing_ranks_as_na() -> None:
    frame = discovery.discovery_frame(JOURNEYS[:3] + [journey("d9", "discovery", retrieval_score=0.1, rank=4)], TOPICS, {"d1": "x" * 100}, k=3)
    assert list(frame["post_id"]) == ["d1", "d2", "d9"] and len(frame.loc[0, "content"]) == 70
    assert frame["rank in feed"].isna().tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("shown", "least"),
    [
        ({"x": 7, "y": 2, "z": 1}, "z"),
        ({"x": 7, "y": 3}, "z"),  # a topic discovery does not show at all
        ({"x": 5, "unknown": 5}, "y"),  # ties: alphabetical; never "unknown"
    ],
)
def test_least_shown_topic(shown: dict[str, int], least: str) -> None:
    assert discovery.least_shown_topic(Counter(shown), {"a": "x", "b": "y", "c": "z"}) == least


# --- The like session, against a fake stack --------------------------------------------------------


def fake_lab(posts: PostVectors, interest: np.ndarray) -> Any:
    """The API for one reader whose likes reach the interest vector two reads later, like the worker's."""
    return FakeLab(vectors=dict(zip(posts.post_ids, posts.matrix, strict=True)), interest=interest, interest_lag=2)


@pytest.fixture
def world() -> tuple[PostVectors, dict[str, str]]:
    rng = np.random.default_rng(7)
    centres = {"travel": unit(1, 0, 0, 0), "cooking": unit(0, 1, 0, 0), "music": unit(0, 0, 1, 0)}
    ids, rows, topics = [], [], []
    for topic, centre in centres.items():
        for i in range(8):
            ids.append(f"{topic}-{i}")
            rows.append(unit(*(centre[:4] + 0.2 * rng.normal(size=4))))
            topics.append(topic)
    return PostVectors(ids, np.stack(rows), topics), dict(zip(ids, topics))


def test_like_session_moves_the_vector_by_the_ema_and_raises_the_topic_share(world: Any) -> None:
    posts, topic_of = world
    lab = fake_lab(posts, unit(0, 1, 0.3, 0))  # a cooking fan
    session = LikeSession(lab, "u1", topic_of, k=8, timeout=5)
    steps = session.like_topic("travel", 4)
    assert [s.post_id for s in steps] == ["travel-0", "travel-1", "travel-2", "travel-3"]
    assert all(s.topic == "travel" for s in steps) and len(session.path) == 5
    table = discovery.ema_table(steps, posts.vector, lab.rate)
    assert (table["error"] < 1e-6).all() and (table["cos after"] > table["cos before"]).all()
    shares = session.share("travel")
    assert shares[0] == 0.0 and shares[-1] > 0.5 and shares == sorted(shares)
    np.testing.assert_array_equal(steps[1].before, steps[0].after)


def test_like_session_skips_posts_it_liked_and_runs_out(world: Any) -> None:
    posts, topic_of = world
    session = LikeSession(fake_lab(posts, unit(1, 1, 1, 1)), "u1", topic_of, timeout=5)
    session.like_topic("music", 8)
    with pytest.raises(LookupError, match="music"):
        session.next_post("music")


def test_like_session_refuses_a_like_that_moves_nothing(world: Any) -> None:
    posts, topic_of = world
    lab = fake_lab(posts, unit(1, 1, 1, 1))
    lab.likes.add("music-0")  # liked before this session: the API answers already_liked
    session = LikeSession(lab, "u1", topic_of, timeout=5)
    with pytest.raises(ValueError, match="already liked"):
        session.like("music-0")


def test_waiting_for_a_vector_that_never_moves_times_out(world: Any) -> None:
    posts, _ = world
    lab: Any = fake_lab(posts, unit(1, 0, 0, 0))
    with pytest.raises(TimeoutError):
        discovery.wait_for_interest_change(lab, "u1", unit(1, 0, 0, 0), timeout=0.2, interval=0.05)


def test_topic_history_figure_stacks_a_bar_per_topic(world: Any) -> None:
    posts, topic_of = world
    session = LikeSession(fake_lab(posts, unit(0, 1, 0, 0)), "u1", topic_of, k=8, timeout=5)
    session.like_topic("travel", 2)
    figure = discovery.topic_history_figure(session)
    assert figure.layout.barmode == "stack"
    assert list(figure.data[0].x) == ["start", "1 · travel", "2 · travel"]
    for position in range(3):
        assert sum(trace.y[position] for trace in figure.data) == 8


def test_like_explorer_builds_headless_and_its_button_likes(world: Any) -> None:
    posts, topic_of = world
    session = LikeSession(fake_lab(posts, unit(0, 1, 0, 0)), "u1", topic_of, timeout=5)
    box = discovery.like_explorer(session, posts, Projection.fit(posts.matrix))
    controls = box.children[0].children
    controls[0].value = "music"
    controls[1].click()
    assert [s.topic for s in session.steps] == ["music"] and "1 likes so far" in box.children[1].value


class EmbeddingLab:
    """Records how it was asked to wait; SQL holds ``posts`` posts."""

    def __init__(self, posts: int) -> None:
        self.posts = posts
        self.store = self
        self.waited: list[tuple[Any, ...]] = []

    def counts(self) -> dict[str, int]:
        return {"posts": self.posts}

    def wait_until_ready(self, groups: list[str], *, progress: bool, stall_seconds: float) -> dict[str, Any]:
        self.waited.append((groups, progress, stall_seconds))
        return {"status": "ok"}


def test_wait_until_embedded_waits_for_the_embedding_group_with_a_bar() -> None:
    lab: Any = EmbeddingLab(posts=10)
    assert discovery.wait_until_embedded(lab, stall_seconds=5) == 10
    assert lab.waited == [(["embedding"], True, 5)]

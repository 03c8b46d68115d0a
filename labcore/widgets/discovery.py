"""Notebook 03: embeddings, nearest neighbours, a 2-D map of the posts, and the like explorer.

The pure functions (similarity, exact nearest neighbours, PCA, discovery topic shares) take numpy
arrays and plain dicts, so unit tests call them without a stack. ``LikeSession`` is the live part:
it likes posts of one topic for a user through the public API, waits until the (asynchronous)
interest worker has moved the user's interest vector, and records what discovery returns after
each like. ``like_explorer`` wraps a session in buttons; every button only calls the session, so a
notebook's checks can call the same method directly (papermill runs headless, where a widget renders
nothing and nobody clicks).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from labcore.widgets.output import show

if TYPE_CHECKING:  # plotly and ipywidgets are imported when a figure or widget is built
    import ipywidgets
    import pandas as pd
    import plotly.graph_objects as go

    from labcore.lab.client import LabClient

UNKNOWN_TOPIC = "unknown"  # posts that are not part of the seeded world (written in other notebooks)
DISCOVERY = "discovery"


# --- Embeddings --------------------------------------------------------------------------------------


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity of the rows of ``vectors`` (any length; they are normalized here)."""
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a zero vector has no direction, so no cosine")
    unit = matrix / norms
    return unit @ unit.T


def similarity_heatmap(labels: Sequence[str], vectors: np.ndarray, title: str = "Cosine similarity") -> go.Figure:
    """A labelled heatmap of ``cosine_matrix(vectors)``."""
    import plotly.graph_objects as go

    sims = cosine_matrix(vectors)
    short = [label if len(label) <= 40 else label[:37] + "..." for label in labels]
    figure = go.Figure(
        go.Heatmap(
            z=sims, x=short, y=short, zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
            text=np.round(sims, 2), texttemplate="%{text}", hovertemplate="%{y}<br>%{x}<br>cos %{z:.3f}<extra></extra>",
        )  # fmt: skip
    )
    figure.update_layout(title=title, yaxis_autorange="reversed", height=180 + 45 * len(labels))
    return figure


@dataclass(frozen=True)
class PostVectors:
    """The stored post embeddings as one matrix: row ``i`` is ``post_ids[i]``, of topic ``topics[i]``."""

    post_ids: list[str]
    matrix: np.ndarray  # (n, 384) float32 unit vectors
    topics: list[str]

    @classmethod
    def from_points(cls, points: Iterable[Mapping[str, Any]], topic_of: Mapping[str, str]) -> PostVectors:
        """From ``lab.inspect("vectors")["points"]``; posts outside the seeded world are ``unknown``."""
        points = list(points)
        if not points:
            raise ValueError("no vectors yet: is the world seeded and embedded?")
        post_ids = [p["post_id"] for p in points]
        matrix = np.asarray([p["vector"] for p in points], dtype=np.float32)
        return cls(post_ids, matrix, [topic_of.get(pid, UNKNOWN_TOPIC) for pid in post_ids])

    def __len__(self) -> int:
        return len(self.post_ids)

    def vector(self, post_id: str) -> np.ndarray:
        return self.matrix[self.post_ids.index(post_id)]

    def topic_cohesion(self) -> dict[str, float]:
        """Mean cosine between posts of the same topic and between posts of different topics.

        Embeddings are useful for discovery exactly when the first clearly beats the second.
        """
        known = [i for i, topic in enumerate(self.topics) if topic != UNKNOWN_TOPIC]
        sims = cosine_matrix(self.matrix[known])
        topics = np.asarray([self.topics[i] for i in known])
        same = topics[:, None] == topics[None, :]
        off_diagonal = ~np.eye(len(known), dtype=bool)
        return {
            "same_topic": float(sims[same & off_diagonal].mean()),
            "different_topic": float(sims[~same].mean()),
        }


def nearest(matrix: np.ndarray, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Exact k nearest neighbours by cosine: ``(row index, similarity)``, most similar first.

    This is what an ANN index approximates: it scores every row. Fine for thousands of posts; an
    HNSW graph (Qdrant's server) visits only a few hundred of millions.
    """
    sims = np.asarray(matrix, dtype=np.float64) @ (np.asarray(query, dtype=np.float64) / np.linalg.norm(query))
    order = np.argsort(-sims, kind="stable")[:k]
    return [(int(i), float(sims[i])) for i in order]


# --- A 2-D map ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """PCA to two dimensions, by SVD of the centred matrix: the two directions of greatest spread."""

    mean: np.ndarray  # (dim,)
    components: np.ndarray  # (2, dim), orthonormal rows
    explained: tuple[float, float]  # share of the total variance along each component

    @classmethod
    def fit(cls, matrix: np.ndarray) -> Projection:
        data = np.asarray(matrix, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] < 3:
            raise ValueError("PCA to 2-D needs a matrix of at least three rows")
        mean = data.mean(axis=0)
        _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
        variance = singular**2
        share = variance / variance.sum()
        components = vt[:2].copy()
        # An SVD's signs are arbitrary; fix them so the same data always gives the same picture.
        for row in components:
            if row[np.argmax(np.abs(row))] < 0:
                row *= -1
        return cls(mean, components, (float(share[0]), float(share[1])))

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, 2)`` coordinates of ``vectors`` (one vector gives one row)."""
        data = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        return (data - self.mean) @ self.components.T


def projection_figure(
    posts: PostVectors,
    projection: Projection,
    path: Sequence[np.ndarray] = (),
    path_labels: Sequence[str] | None = None,
    highlight: Iterable[str] = (),
    title: str = "Posts by topic (PCA of the embeddings)",
) -> go.Figure:
    """Posts as dots coloured by topic; ``path`` (interest vectors over time) as a numbered line.

    ``highlight`` post ids (e.g. the liked ones) get a ring so the reader sees what pulled the path.
    """
    import plotly.express as px
    import plotly.graph_objects as go

    coords = projection.transform(posts.matrix)
    palette = px.colors.qualitative.Safe
    figure = go.Figure()
    for index, topic in enumerate(sorted(set(posts.topics))):
        rows = [i for i, t in enumerate(posts.topics) if t == topic]
        figure.add_trace(
            go.Scattergl(
                x=coords[rows, 0], y=coords[rows, 1], mode="markers", name=topic,
                marker={"size": 6, "opacity": 0.7,
                        "color": "lightgray" if topic == UNKNOWN_TOPIC else palette[index % len(palette)]},
                text=[posts.post_ids[i] for i in rows], hovertemplate=f"{topic}<br>%{{text}}<extra></extra>",
            )  # fmt: skip
        )
    marked = [posts.post_ids.index(pid) for pid in highlight if pid in posts.post_ids]
    if marked:
        figure.add_trace(
            go.Scatter(
                x=coords[marked, 0], y=coords[marked, 1], mode="markers", name="liked",
                marker={"size": 13, "symbol": "circle-open", "color": "black", "line": {"width": 2}},
            )  # fmt: skip
        )
    if len(path):
        points = projection.transform(np.stack(path))
        labels = list(path_labels) if path_labels is not None else ["start"] + [str(i) for i in range(1, len(path))]
        figure.add_trace(
            go.Scatter(
                x=points[:, 0], y=points[:, 1], mode="lines+markers+text", name="interest vector",
                text=labels, textposition="top center",
                line={"color": "black", "width": 2},
                marker={"size": [10] * (len(points) - 1) + [18], "color": "black",
                        "symbol": ["circle"] * (len(points) - 1) + ["star"]},
            )  # fmt: skip
        )
    pc1, pc2 = projection.explained
    figure.update_layout(
        title=title, height=560, legend_title_text="topic",
        xaxis_title=f"PC1 ({pc1:.0%} of variance)", yaxis_title=f"PC2 ({pc2:.0%} of variance)",
    )  # fmt: skip
    return figure


# --- Discovery -----------------------------------------------------------------------------------


def discovery_top(journeys: Iterable[Mapping[str, Any]], k: int = 10) -> list[Mapping[str, Any]]:
    """The ``k`` discovery candidates with the highest ANN similarity (``retrieval_score``)."""
    found = [j for j in journeys if j["source"] == DISCOVERY]
    return sorted(found, key=lambda j: j["retrieval_score"], reverse=True)[:k]


def topic_counts(journeys: Iterable[Mapping[str, Any]], topic_of: Mapping[str, str], k: int = 10) -> Counter[str]:
    """How many of the top-``k`` discovery candidates are on each topic."""
    return Counter(topic_of.get(j["post_id"], UNKNOWN_TOPIC) for j in discovery_top(journeys, k))


def topic_share(journeys: Iterable[Mapping[str, Any]], topic_of: Mapping[str, str], topic: str, k: int = 10) -> float:
    """The share of ``topic`` among the top-``k`` discovery candidates (0 when there are none)."""
    counts = topic_counts(journeys, topic_of, k)
    total = sum(counts.values())
    return counts[topic] / total if total else 0.0


def discovery_frame(
    journeys: Iterable[Mapping[str, Any]],
    topic_of: Mapping[str, str],
    content: Mapping[str, str] | None = None,
    k: int = 10,
) -> pd.DataFrame:
    """The top-``k`` discovery candidates as a table: similarity, topic, text, and what became of it."""
    import pandas as pd

    rows = [
        {
            "post_id": j["post_id"],
            "similarity": round(j["retrieval_score"], 4),
            "topic": topic_of.get(j["post_id"], UNKNOWN_TOPIC),
            "content": (content or {}).get(j["post_id"], "")[:70],
            "rank in feed": j.get("rank"),
            "dropped": j.get("dropped") or j.get("filtered"),
            "demoted": j.get("demoted"),  # below the others (out_of_network_cap...), on the page if room
        }
        for j in discovery_top(journeys, k)
    ]
    columns = ["post_id", "similarity", "topic", "content", "rank in feed", "dropped", "demoted"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({"rank in feed": "Int64"})  # a missing rank stays <NA>, not a float NaN


def least_shown_topic(shown: Mapping[str, int], topic_of: Mapping[str, str]) -> str:
    """The world's topic with the fewest posts in ``shown`` (topic counts of a discovery top-k):
    liking it shows the clearest move. Ties go to the alphabetically first topic."""
    topics = sorted(set(topic_of.values()) - {UNKNOWN_TOPIC})
    if not topics:
        raise ValueError("no topics to choose from")
    return min(topics, key=lambda topic: shown.get(topic, 0))


# --- Live: likes move the interest vector ------------------------------------------------------------


def wait_until_embedded(lab: LabClient, *, stall_seconds: float = 120.0, progress: bool = True) -> int:
    """Wait, with a progress bar, until the embedding worker has handled every new post (every post
    has its vector: discovery and topic similarity need them); returns the post count.

    ``lab.wait_until_ready(["embedding"])``: the embedding group's backlog on the event log (plus the
    outbox) reaching zero, which ``/health`` reports; gives up when it stops shrinking for
    ``stall_seconds`` (a fresh ``small`` world on a busy laptop takes minutes, a stuck worker never ends).
    """
    lab.wait_until_ready(["embedding"], progress=progress, stall_seconds=stall_seconds)
    return lab.store.counts()["posts"]


def interest_vector(lab: LabClient, user_id: str) -> np.ndarray | None:
    """The user's interest vector as the feed uses it (cold-started and stored on first read)."""
    vector = lab.inspect(f"interest/{user_id}")["vector"]
    return None if vector is None else np.asarray(vector, dtype=np.float32)


def wait_for_interest_change(
    lab: LabClient, user_id: str, before: np.ndarray | None, timeout: float = 30.0, interval: float = 0.1
) -> np.ndarray:
    """Poll until the interest worker has moved the user's vector away from ``before``.

    A like reaches the interest worker through the ``engagements`` topic, so the API answers before
    the vector moves: reading it straight after ``lab.like`` would show the old one.
    """
    deadline = time.monotonic() + timeout
    while True:
        vector = interest_vector(lab, user_id)
        if vector is not None and (before is None or not np.allclose(vector, before, atol=1e-7)):
            return vector
        if time.monotonic() > deadline:
            raise TimeoutError(f"the interest vector of {user_id} did not change within {timeout:.0f} s")
        time.sleep(interval)


@dataclass(frozen=True)
class LikeStep:
    """One like and what it did: the interest vector before and after, and discovery afterwards."""

    post_id: str
    topic: str
    before: np.ndarray
    after: np.ndarray
    topics: Counter[str]  # topics of the top-k discovery candidates after the like
    seconds: float  # from the like to the moved vector


@dataclass
class LikeSession:
    """A user who likes posts of chosen topics, one at a time; ``steps`` records each move."""

    lab: LabClient
    user_id: str
    topic_of: Mapping[str, str]
    k: int = 10
    timeout: float = 30.0
    start: np.ndarray | None = None
    start_topics: Counter[str] = field(default_factory=Counter)
    steps: list[LikeStep] = field(default_factory=list)
    liked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start = interest_vector(self.lab, self.user_id)
        self.start_topics = self.discovery_topics()

    @property
    def path(self) -> list[np.ndarray]:
        """The interest vector at the start and after each like."""
        return ([self.start] if self.start is not None else []) + [step.after for step in self.steps]

    @property
    def current(self) -> np.ndarray | None:
        return self.steps[-1].after if self.steps else self.start

    def discovery_topics(self) -> Counter[str]:
        """Topics of the user's top-``k`` discovery candidates right now (from ``lab.explain``)."""
        return topic_counts(self.lab.explain(self.user_id)["journeys"], self.topic_of, self.k)

    def next_post(self, topic: str) -> str:
        """A post of ``topic`` this session has not liked yet (world order)."""
        for post_id, post_topic in self.topic_of.items():
            if post_topic == topic and post_id not in self.liked:
                return post_id
        raise LookupError(f"every {topic} post is liked already")

    def like(self, post_id: str) -> LikeStep:
        """Like ``post_id``, wait for the interest vector to move, then read discovery again."""
        before = self.current
        started = time.monotonic()
        result = self.lab.like(self.user_id, post_id)
        self.liked.append(post_id)
        if result.get("status") == "already_liked":  # no event, so nothing will move
            raise ValueError(f"{self.user_id} already liked {post_id}")
        after = wait_for_interest_change(self.lab, self.user_id, before, self.timeout)
        step = LikeStep(
            post_id, self.topic_of.get(post_id, UNKNOWN_TOPIC), before if before is not None else after,
            after, self.discovery_topics(), round(time.monotonic() - started, 3),
        )  # fmt: skip
        self.steps.append(step)
        return step

    def like_topic(self, topic: str, n: int = 1) -> list[LikeStep]:
        """Like ``n`` not-yet-liked posts of ``topic``, one at a time."""
        return [self.like(self.next_post(topic)) for _ in range(n)]

    def share(self, topic: str) -> list[float]:
        """``topic``'s share of the top-k discovery candidates: at the start, then after each like."""
        history = [self.start_topics] + [step.topics for step in self.steps]
        return [counts[topic] / max(1, sum(counts.values())) for counts in history]


def ema_table(steps: Sequence[LikeStep], post_vector: Callable[[str], np.ndarray], rate: float) -> pd.DataFrame:
    """Each like checked against the EMA the worker should have applied.

    ``cos before``/``cos after``: the interest vector's cosine with the liked post, before and after
    (a like must pull the vector toward the post). ``error`` is the largest coordinate difference
    between the stored vector and ``ema_step(before, post, rate)`` computed here.
    """
    import pandas as pd

    from labcore.interests import ema_step

    rows = []
    for index, step in enumerate(steps, 1):
        liked = post_vector(step.post_id)
        predicted = ema_step(step.before, liked, rate)
        rows.append(
            {
                "like": index,
                "topic": step.topic,
                "cos before": round(float(np.dot(step.before, liked)), 4),
                "cos after": round(float(np.dot(step.after, liked)), 4),
                "error": float(np.abs(predicted - step.after).max()),
                "seconds": step.seconds,
            }
        )
    columns = ["like", "topic", "cos before", "cos after", "error", "seconds"]
    return pd.DataFrame(rows, columns=columns).set_index("like")


def topic_history_figure(session: LikeSession, title: str = "Topics of the top-10 discovery candidates") -> go.Figure:
    """Stacked bars: after each like, how many of the top-k discovery candidates are on each topic."""
    import plotly.express as px
    import plotly.graph_objects as go

    history = [("start", session.start_topics)] + [
        (f"{i} · {step.topic}", step.topics) for i, step in enumerate(session.steps, 1)
    ]
    topics = sorted({topic for _, counts in history for topic in counts})
    palette = px.colors.qualitative.Safe
    every = sorted(set(session.topic_of.values()) | {UNKNOWN_TOPIC})
    figure = go.Figure()
    for topic in topics:
        figure.add_trace(
            go.Bar(
                x=[label for label, _ in history], y=[counts[topic] for _, counts in history], name=topic,
                marker_color="lightgray" if topic == UNKNOWN_TOPIC else palette[every.index(topic) % len(palette)],
            )  # fmt: skip
        )
    figure.update_layout(barmode="stack", title=title, xaxis_title="after like · topic liked",
                         yaxis_title=f"of the top {session.k}", height=380)  # fmt: skip
    return figure


def like_explorer(session: LikeSession, posts: PostVectors, projection: Projection) -> ipywidgets.VBox:
    """Pick a topic, press *like*: the map shows the interest vector move and the bars show discovery.

    Each click calls ``session.like_topic``; run the cell below it to read ``session.steps``.
    """
    import ipywidgets as widgets

    topics = sorted(set(session.topic_of.values()))
    choice = widgets.Dropdown(options=topics, value=least_shown_topic(session.start_topics, session.topic_of), description="topic")
    like_one = widgets.Button(description="like 1 post", button_style="primary", icon="heart")
    like_three = widgets.Button(description="like 3 posts", icon="heart")
    status = widgets.HTML()
    output = widgets.Output()

    def render() -> None:
        fig = projection_figure(posts, projection, session.path, highlight=session.liked)
        show(output, fig, topic_history_figure(session))

    def on_click(n: int) -> Callable[[Any], None]:
        def handler(_button: Any) -> None:
            for button in (like_one, like_three):
                button.disabled = True
            status.value = f"liking {n} {choice.value} post(s) and waiting for the interest worker ..."
            try:
                steps = session.like_topic(choice.value, n)
                share = session.share(choice.value)[-1]
                status.value = (
                    f"{len(session.steps)} likes so far; the last moved the vector in {steps[-1].seconds:.2f} s."
                    f" {choice.value}: {share:.0%} of the top {session.k} discovery candidates"
                )
            except (LookupError, TimeoutError, ValueError) as exc:
                status.value = f"<b>{exc}</b>"
            finally:
                for button in (like_one, like_three):
                    button.disabled = False
            render()

        return handler

    like_one.on_click(on_click(1))
    like_three.on_click(on_click(3))
    render()
    return widgets.VBox([widgets.HBox([choice, like_one, like_three]), status, output])

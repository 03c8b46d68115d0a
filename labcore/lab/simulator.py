"""A seeded user simulator: readers with hidden tastes use the feed through the public API.

A learned ranker needs logged behaviour, and a lab has no real users. Each simulated reader is a user
of the seeded world with a *hidden* taste the stack never sees:

* a preference per topic — high (0.7–1.0) for the user's favourite topics in the world, low
  (0.0–0.25) for the others;
* an affinity (0.3–0.9) to some authors — about half of the people they follow, and three they do
  not follow yet.

A session is what an app does: ``GET /feed/explain`` (the feed plus what each candidate looked like
to the ranker), the reader *examines* the top of the page with a position bias (slot ``i`` is looked
at with probability ``POSITION_DECAY ** i``, like a scrolling thumb), the app reports what was seen
(``POST /impressions``), and the reader likes each seen post with

    p(like) = sigmoid(BASE + TOPIC_WEIGHT · topic_pref + AUTHOR_WEIGHT · author_affinity
                      + FRESH_WEIGHT · freshness + POPULAR_WEIGHT · popularity)

    freshness  = 0.5 ** (age_hours / 24)                      (as formula-v1's recency)
    popularity = min(1, log1p(like_count) / log1p(100))       (the like count the app shows)

**Why these weights.** They are the lesson's ground truth, chosen so that it has something to teach
and a learner sees it every run. These readers care about *what* a post is about most (an on-topic
post is liked about half the time, an off-topic one about once in fifty), then about *who* wrote
it, then a little about freshness and social proof. ``formula-v1`` guessed the opposite order —
0.35 recency, 0.25 engagement, 0.20 affinity, 0.15 topic — so it captures these tastes only partly,
and a model that learns the weights from the logs beats it clearly. Each term is visible to the
ranker through a feature — ``topic_similarity`` (the reader's interest vector moves toward what they
like), ``affinity_score`` (likes and follows per author), ``created_at`` (recency) and ``like_count``
— so what is learned is learnable, never a hidden coin flip. The contrast is strong on purpose: on a
tiny world a few hundred held-out impressions must carry the result beyond their own noise.

A post the reader liked before (in the seeded world or an earlier session) cannot be liked again; its
impression is logged with ``already_liked`` (the training set leaves such rows out: no outcome).

Everything random comes from one seeded generator, so a run with the same world, seed and stack
state is the same run. The simulator also keeps the client-side log of each impression — position,
whether exploration placed it, the model version that ranked it, the request-time
``topic_similarity`` — which is what training and the A/B comparison read.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd

from labcore.lab.world import TOPIC_NAMES, World

POSITION_DECAY = 0.85  # probability of looking at slot i is POSITION_DECAY ** i
TOP_K = 10  # nobody scrolls further in one session
BASE, TOPIC_WEIGHT, AUTHOR_WEIGHT, FRESH_WEIGHT, POPULAR_WEIGHT = -5.0, 6.0, 3.0, 1.5, 1.0
FRESH_HALF_LIFE_HOURS = 24.0
POPULAR_SATURATION = 100  # likes at which social proof stops growing (formula-v1's engagement cap)


class FeedClient(Protocol):
    """What the simulator needs of ``LabClient``: the app's three calls."""

    def explain(self, user_id: str, limit: int | None = None) -> dict[str, Any]: ...
    def impressions(self, user_id: str, post_ids: list[str]) -> dict[str, Any]: ...
    def like(self, user_id: str, post_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class HiddenTaste:
    """What a simulated reader likes — known to the simulator, never to the stack."""

    user_id: str
    topics: dict[str, float]  # preference in [0, 1]
    authors: dict[str, float]  # affinity in [0, 1]; absent = 0

    def like_probability(self, topic: str | None, author_id: str, age_hours: float, like_count: float = 0) -> float:
        topic_pref = self.topics.get(topic, 0.3) if topic else 0.3  # a post outside the world: lukewarm
        freshness = 0.5 ** (max(0.0, age_hours) / FRESH_HALF_LIFE_HOURS)
        popularity = min(1.0, math.log1p(max(0.0, like_count)) / math.log1p(POPULAR_SATURATION))
        logit = (
            BASE + TOPIC_WEIGHT * topic_pref + AUTHOR_WEIGHT * self.authors.get(author_id, 0.0)
            + FRESH_WEIGHT * freshness + POPULAR_WEIGHT * popularity
        )  # fmt: skip
        return 1 / (1 + math.exp(-logit))


def hidden_tastes(world: World, seed: int) -> dict[str, HiddenTaste]:
    """A taste per user of ``world``, drawn from a generator seeded per user (stable if users are added)."""
    followees: dict[str, list[str]] = {}
    for follow in world.follows:
        followees.setdefault(follow.follower_id, []).append(follow.followee_id)
    everyone = [u.user_id for u in world.users]
    tastes = {}
    for user in world.users:
        rng = random.Random(f"{seed}:taste:{user.user_id}")
        topics = {t: rng.uniform(0.7, 1.0) if t in user.topics else rng.uniform(0.0, 0.25) for t in TOPIC_NAMES}
        authors = {a: rng.uniform(0.3, 0.9) for a in followees.get(user.user_id, []) if rng.random() < 0.5}
        strangers = [a for a in everyone if a != user.user_id and a not in followees.get(user.user_id, [])]
        for author in rng.sample(strangers, min(3, len(strangers))):
            authors[author] = rng.uniform(0.3, 0.8)
        tastes[user.user_id] = HiddenTaste(user.user_id, topics, authors)
    return tastes


@dataclass
class UserSimulator:
    """Simulated readers of ``world`` using the feed through ``client``.

    ``run(sessions)`` returns the impression log of those sessions (one row per impression) and
    appends it to ``self.log``.
    """

    client: FeedClient
    world: World
    seed: int = 42
    page_size: int = 20
    top_k: int = TOP_K
    tastes: dict[str, HiddenTaste] = field(init=False)
    log: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.tastes = hidden_tastes(self.world, self.seed)
        self.topic_of = {p.post_id: p.topic for p in self.world.posts}
        self.liked = {(like.user_id, like.post_id) for like in self.world.likes}
        self.rng = random.Random(f"{self.seed}:sessions")
        self.log = pd.DataFrame()
        self.sessions_run = 0
        self._order: list[str] = []

    def run(self, sessions: int) -> pd.DataFrame:
        """``sessions`` sessions, spread evenly over the readers in a seeded order."""
        readers = sorted(self.tastes)
        rows: list[dict[str, Any]] = []
        for _ in range(sessions):
            if self.sessions_run % len(readers) == 0:
                self.rng.shuffle(readers)
                self._order = list(readers)
            reader = self._order[self.sessions_run % len(readers)]
            rows += self.session(reader)
            self.sessions_run += 1
        frame = pd.DataFrame(rows)
        self.log = pd.concat([self.log, frame], ignore_index=True)
        return frame

    def session(self, user_id: str) -> list[dict[str, Any]]:
        """One visit: read the feed, look at the top with a position bias, report, like."""
        taste = self.tastes[user_id]
        page = self.client.explain(user_id, limit=self.page_size)
        journeys = {j["post_id"]: j for j in page.get("journeys", [])}
        seen = [
            (position, item)
            for position, item in enumerate(page["items"][: self.top_k])
            if self.rng.random() < POSITION_DECAY**position
        ]
        if not seen:
            return []
        ts = datetime.now(UTC)  # the impression time: before the report, so every like comes after it
        self.client.impressions(user_id, [item["post_id"] for _, item in seen])
        rows = []
        for position, item in seen:
            post_id, author_id = item["post_id"], item["user_id"]
            features = journeys.get(post_id, {}).get("features", {})
            age_hours = (pd.Timestamp(ts) - _utc(item["created_at"])).total_seconds() / 3600
            like_count = features.get("like_count") or 0  # what the app shows next to the post
            p_like = taste.like_probability(self.topic_of.get(post_id), author_id, age_hours, like_count)
            already_liked = (user_id, post_id) in self.liked
            liked = self.rng.random() < p_like and not already_liked
            if liked:
                self.client.like(user_id, post_id)
                self.liked.add((user_id, post_id))
            rows.append(
                {
                    "user_id": user_id,
                    "post_id": post_id,
                    "author_id": author_id,
                    "ts": ts,
                    "position": position,
                    "source": item["source"],
                    "explored": bool(item.get("explored", False)),
                    "model_version": page["model_version"],
                    "topic_similarity": features.get("topic_similarity"),
                    "p_like": p_like,
                    "already_liked": already_liked,
                    "liked": liked,
                }
            )
        return rows


def _utc(value: str) -> pd.Timestamp:
    moment = pd.Timestamp(value)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")

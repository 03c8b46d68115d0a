"""The synthetic world: deterministic, the declared size, and shaped like a real social network."""

from __future__ import annotations

import re
import statistics
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from labcore.lab.world import (
    TOPIC_NAMES,
    TOPICS,
    WINDOW,
    WORLD_SIZES,
    World,
    generate_world,
    load_world,
)
from labcore.write.posts import USERNAME, PostDraft

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CELEBRITY_THRESHOLD = 200  # Settings.celebrity_threshold's default


@pytest.fixture(scope="module")
def worlds() -> dict[str, World]:
    return {size: generate_world(size, 42, NOW) for size in ("tiny", "small")}


def _followers(world: World) -> list[int]:
    return sorted(world.follower_counts().values(), reverse=True)


# --- Determinism and size --------------------------------------------------------------------------


def test_same_seed_gives_the_same_world(worlds: dict[str, World]) -> None:
    assert generate_world("small", 42, NOW) == worlds["small"]


def test_another_seed_gives_another_world(worlds: dict[str, World]) -> None:
    other = generate_world("small", 43, NOW)
    assert other.users[0].user_id != worlds["small"].users[0].user_id
    assert set(other.follows) != set(worlds["small"].follows)
    assert [p.content for p in other.posts] != [p.content for p in worlds["small"].posts]


def test_unknown_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown world size"):
        generate_world("huge", 42, NOW)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_sizes_are_roughly_as_declared(worlds: dict[str, World], size: str) -> None:
    world, spec = worlds[size], WORLD_SIZES[size]
    assert len(world.users) == spec.users
    assert len(world.posts) == spec.posts
    assert 0.6 < len(world.follows) / (spec.users * spec.mean_follows) < 1.6
    assert 0.5 < len(world.likes) / (spec.users * spec.like_rate) < 1.5


def test_medium_world_generates() -> None:
    world = generate_world("medium", 42, NOW)
    spec = WORLD_SIZES["medium"]
    assert (len(world.users), len(world.posts)) == (spec.users, spec.posts)
    followers = _followers(world)
    assert sum(count > CELEBRITY_THRESHOLD for count in followers) >= 2
    assert followers[0] >= 20 * statistics.median(followers)


def test_posts_fall_in_the_week_before_now_in_order(worlds: dict[str, World]) -> None:
    times = [post.created_at for post in worlds["small"].posts]
    assert times == sorted(times)
    assert NOW - WINDOW <= times[0] and times[-1] < NOW
    assert times[-1] - times[0] > timedelta(days=6)  # spread over the week, not bunched


# --- Follow graph ----------------------------------------------------------------------------------


def test_small_world_has_a_power_law_follow_graph(worlds: dict[str, World]) -> None:
    followers = _followers(worlds["small"])
    median = statistics.median(followers)
    assert followers[0] >= 5 * median
    assert median < 20  # most users have few followers


@pytest.mark.parametrize("seed", [1, 7, 42, 2024])
def test_small_world_has_celebrities_above_the_threshold(seed: int) -> None:
    followers = _followers(generate_world("small", seed, NOW))
    assert sum(count > CELEBRITY_THRESHOLD for count in followers) >= 2


def test_tiny_world_has_a_standout_account(worlds: dict[str, World]) -> None:
    followers = _followers(worlds["tiny"])
    assert followers[0] >= 3 * statistics.median(followers)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_follow_graph_is_a_clean_directed_graph(worlds: dict[str, World], size: str) -> None:
    world = worlds[size]
    ids = {user.user_id for user in world.users}
    edges = [(edge.follower_id, edge.followee_id) for edge in world.follows]
    assert all(a != b for a, b in edges), "self-follow"
    assert len(edges) == len(set(edges)), "duplicate follow"
    assert {user for edge in edges for user in edge} <= ids
    following = Counter(a for a, _ in edges)
    assert min(following[user_id] for user_id in ids) >= WORLD_SIZES[size].min_follows


def test_users_mostly_follow_accounts_sharing_a_topic(worlds: dict[str, World]) -> None:
    world = worlds["small"]
    topics = {user.user_id: set(user.topics) for user in world.users}

    def shared(a: str, b: str) -> bool:
        return bool(topics[a] & topics[b])

    actual = statistics.mean(shared(e.follower_id, e.followee_id) for e in world.follows)
    ids = list(topics)
    baseline = statistics.mean(shared(a, b) for a in ids[:100] for b in ids[100:200])
    assert actual > baseline + 0.2


# --- Users and posts -------------------------------------------------------------------------------


def test_usernames_are_valid_and_unique(worlds: dict[str, World]) -> None:
    users = worlds["small"].users
    assert all(USERNAME.fullmatch(user.username) for user in users)
    assert len({user.username for user in users}) == len(users)
    assert all(1 <= len(user.topics) <= 2 and set(user.topics) <= set(TOPIC_NAMES) for user in users)


def test_ids_are_unique_uuid4s(worlds: dict[str, World]) -> None:
    world = worlds["small"]
    ids = [user.user_id for user in world.users] + [post.post_id for post in world.posts]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(value).version == 4 for value in ids)


def test_authors_post_mostly_on_their_topics_and_some_are_prolific(worlds: dict[str, World]) -> None:
    world = worlds["small"]
    favourites = {user.user_id: user.topics for user in world.users}
    assert statistics.mean(post.topic in favourites[post.author_id] for post in world.posts) > 0.8
    per_author = sorted(Counter(post.author_id for post in world.posts).values(), reverse=True)
    assert per_author[0] >= 4 * statistics.median(per_author)


def test_every_post_names_a_subject_of_its_topic(worlds: dict[str, World]) -> None:
    for post in worlds["small"].posts:
        assert any(subject in post.content for subject in TOPICS[post.topic].subjects), post


def test_posts_of_one_topic_cluster(worlds: dict[str, World]) -> None:
    """A TF-IDF nearest-centroid classifier recovers each post's topic: the texts are separable.

    (A stand-in for the sentence-embedding model, which separates them as cleanly; IDF keeps the
    shared words, "the" and "a", from swamping the topic words.)
    """
    posts = worlds["small"].posts
    words = [re.findall(r"[a-z]+", post.content.lower()) for post in posts]
    vocabulary = {word: j for j, word in enumerate(sorted({w for post_words in words for w in post_words}))}
    vectors = np.zeros((len(posts), len(vocabulary)))
    for i, post_words in enumerate(words):
        for word in post_words:
            vectors[i, vocabulary[word]] += 1.0
    vectors *= np.log(len(posts) / (vectors > 0).sum(axis=0))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.array([TOPIC_NAMES.index(post.topic) for post in posts])

    train = np.arange(len(posts)) % 2 == 0
    centroids = np.stack([vectors[train & (labels == t)].mean(axis=0) for t in range(len(TOPIC_NAMES))])
    predicted = (vectors[~train] @ centroids.T).argmax(axis=1)
    assert (predicted == labels[~train]).mean() > 0.95


def test_post_texts_rarely_repeat(worlds: dict[str, World]) -> None:
    contents = [post.content for post in worlds["small"].posts]
    assert len(set(contents)) > 0.99 * len(contents)


# --- Likes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_likes_are_clean(worlds: dict[str, World], size: str) -> None:
    world = worlds[size]
    author = {post.post_id: post.author_id for post in world.posts}
    pairs = [(like.user_id, like.post_id) for like in world.likes]
    assert len(pairs) == len(set(pairs)), "duplicate like"
    assert all(author[post_id] != user_id for user_id, post_id in pairs), "self-like"
    assert {user_id for user_id, _ in pairs} <= {user.user_id for user in world.users}


def test_likes_favour_own_topics_and_recent_posts(worlds: dict[str, World]) -> None:
    world = worlds["small"]
    topics = {user.user_id: user.topics for user in world.users}
    posts = {post.post_id: post for post in world.posts}
    liked = [posts[like.post_id] for like in world.likes]
    assert statistics.mean(post.topic in topics[like.user_id] for post, like in zip(liked, world.likes)) > 0.75
    middle = NOW - WINDOW / 2
    assert sum(post.created_at > middle for post in liked) > 2 * sum(post.created_at <= middle for post in liked)


# --- Loading ---------------------------------------------------------------------------------------


class RecordingWrites:
    """Stands in for WritePath: records each call in order."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def create_user(self, username: str, display_name: str, *, user_id: str | None = None) -> None:
        self.calls.append(("user", user_id, username))

    def follow_many(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        self.calls.extend(("follow", follower_id, followee_id) for follower_id, followee_id in pairs)
        return pairs

    def create_posts(self, drafts: Iterable[PostDraft]) -> None:
        self.calls.extend(("post", draft.post_id, draft.created_at) for draft in drafts)

    def like_many(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        self.calls.extend(("like", user_id, post_id) for user_id, post_id in pairs)
        return pairs


def test_load_world_writes_users_follows_posts_likes_in_order(worlds: dict[str, World]) -> None:
    world, writes = worlds["tiny"], RecordingWrites()
    counts = load_world(world, writes, progress=False)  # type: ignore[arg-type]

    assert counts == {"users": 30, "follows": len(world.follows), "posts": 150, "likes": len(world.likes)}
    phases = [call[0] for call in writes.calls]
    assert phases == sorted(phases, key=["user", "follow", "post", "like"].index)
    assert [call[1] for call in writes.calls if call[0] == "user"] == [user.user_id for user in world.users]
    posted = [call for call in writes.calls if call[0] == "post"]
    assert [post_id for _, post_id, _ in posted] == [post.post_id for post in world.posts]
    assert [created for _, _, created in posted] == sorted(created for _, _, created in posted)

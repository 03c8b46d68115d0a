"""The exercises and their grader (issue #7).

* ``feedlab grade --solutions`` gives every reference solution full marks; ``feedlab grade`` gives
  every untouched starter zero, with the starter's ``NotImplementedError`` message as the failure.
* The extension-point loader resolves a setting to a function and rejects a bad path clearly.
* Plugged in through the settings, the reference solutions build exactly the feed labcore's own code
  builds — one whole ``FeedPipeline.run`` over real embedded backends, every extension point used —
  and a starter plugged in fails with its message (``501`` from the API).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from labcore import extensions
from labcore.adapters.vectors.base import VectorItem
from labcore.adapters.vectors.qdrant_edge import QdrantEdgeVectors
from labcore.bootstrap import Stack, build_stack
from labcore.domain import TOPIC_NEW_POSTS, ImpressionLogged, to_epoch
from labcore.engines.redis import EmbeddedRedis
from labcore.errors import InvalidInput
from labcore.extensions import EXTENSION_POINTS
from labcore.features.batch import materialize
from labcore.feed.pipeline import FeedPipeline, FeedResult
from labcore.ranking.ab_split import AbSplit
from labcore.ranking.formula import formula_v1
from labcore.ranking.in_process import InProcessRanker
from labcore.ranking.scorer import Scorer
from labcore.settings import Settings
from labcore.testing import MemoryFeatures
from labcore.workers.fanout import FanoutHandler
from labcore.write.outbox import OutboxRelay
from labcore.write.posts import WritePath

REPO = Path(__file__).resolve().parents[2]
EXERCISES = sorted(p.name for p in (REPO / "exercises").iterdir() if p.is_dir() and p.name[:2].isdigit())


# --- the grader -------------------------------------------------------------------------------------


def feedlab_grade(out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    run = subprocess.run(
        [sys.executable, "-m", "labcore.lab.cli", "grade", "--out", str(out), *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    grades = json.loads((out / "grades.json").read_text())
    assert (out / "junit.xml").is_file(), "the grader writes JUnit XML next to grades.json"
    return run, grades


def test_there_are_at_least_eight_exercises_each_with_a_task_a_starter_a_solution_and_tests() -> None:
    assert len(EXERCISES) >= 8
    for name in EXERCISES:
        folder = REPO / "exercises" / name
        assert (folder / "README.md").is_file() and (folder / "starter.py").is_file(), name
        assert list(folder.glob("test_*.py")), f"{name} has no visible tests"
        assert list((REPO / "exercises" / "hidden" / name).glob("test_*.py")), f"{name} has no hidden tests"
        assert (REPO / "exercises" / "solutions" / f"{name}.py").is_file(), f"{name} has no reference solution"
    assert {point.exercise for point in EXTENSION_POINTS.values()} <= set(EXERCISES)


def test_every_reference_solution_gets_full_marks(tmp_path: Path) -> None:
    run, grades = feedlab_grade(tmp_path, "--solutions")
    assert run.returncode == 0, run.stdout + run.stderr
    assert grades["target"] == "solutions" and grades["passed"] is True
    assert [e["exercise"] for e in grades["exercises"]] == EXERCISES
    for exercise in grades["exercises"]:
        assert exercise["possible"] > 0 and exercise["earned"] == exercise["possible"], exercise
        assert any(t["hidden"] for t in exercise["tests"]), f"{exercise['exercise']}: hidden tests ran"
    assert grades["earned"] == grades["possible"]
    assert f"{grades['earned']} / {grades['possible']}" in run.stdout


def test_every_untouched_starter_scores_zero_and_says_what_is_missing(tmp_path: Path) -> None:
    run, grades = feedlab_grade(tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert grades["passed"] is False and grades["earned"] == 0 and grades["possible"] > 0
    for exercise in grades["exercises"]:
        number = exercise["exercise"][:2]
        assert exercise["earned"] == 0 and exercise["possible"] > 0, exercise
        expected = f"NotImplementedError: exercise {number}: implement "
        assert exercise["first_failure"].startswith(expected), exercise["first_failure"]
        assert all(t["message"].startswith(expected) for t in exercise["tests"]), exercise["exercise"]
        assert exercise["first_failure"][:100] in run.stdout, "the table shows the starter's message"
    assert "Traceback" not in run.stdout and 'File "' not in run.stdout, "a score table, not a stack trace"


def test_the_exercises_run_only_through_their_own_config_and_the_learners_ci() -> None:
    import tomllib

    import yaml

    pytest_config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert pytest_config["testpaths"] == ["tests"], "`pytest` / `make test` never collect exercises/"
    assert "points(n)" in (REPO / "exercises" / "pytest.ini").read_text()
    workflow = yaml.safe_load((REPO / "exercises" / "ci" / "grade.yml").read_text())
    commands = " ".join(step.get("run", "") for step in workflow["jobs"]["grade"]["steps"])
    assert "make install" in commands and "feedlab grade" in commands


def test_grading_one_exercise_and_an_unknown_one(tmp_path: Path) -> None:
    run, grades = feedlab_grade(tmp_path, "07", "--solutions")
    assert run.returncode == 0 and [e["exercise"] for e in grades["exercises"]] == ["07_diversity"]
    unknown = subprocess.run(
        [sys.executable, "-m", "labcore.lab.cli", "grade", "99", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unknown.returncode != 0 and "no exercise '99'" in unknown.stderr


# --- the extension-point loader ---------------------------------------------------------------------


def test_the_loader_resolves_a_setting_and_defaults_to_labcore() -> None:
    from labcore.feed.stage4_rerank import rerank as labcore_rerank

    chosen = extensions.load(Settings(reranker="exercises.solutions.07_diversity:rerank"), "reranker")
    assert chosen.__module__ == "exercises.solutions.07_diversity" and chosen.__name__ == "rerank"
    assert extensions.load(Settings(reranker=None), "reranker") is labcore_rerank
    for name, point in EXTENSION_POINTS.items():
        assert name in Settings.model_fields, f"settings field for {point.env}"
        assert callable(extensions.resolve(point.default))


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("exercises/07_diversity/starter.py", "expected an import path 'package.module:function'"),
        ("exercises.07_diversity.starter", "expected an import path"),
        ("exercises.07_diversity.startr:rerank", "no module named 'exercises.07_diversity.startr'"),
        ("exercises.07_diversity.starter:re_rank", "module 'exercises.07_diversity.starter' has no 're_rank'"),
        ("labcore.adapters.impressions.query:SEEN_SQL", "is not a function"),
        ("no_such_package.module:rerank", "no module named 'no_such_package'"),
    ],
)
def test_the_loader_rejects_a_bad_path_with_a_clear_message(path: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        extensions.load(Settings(reranker=path), "reranker")
    assert says in str(caught.value) and f"FEEDLAB_RERANKER={path!r}" in str(caught.value)


# --- plugged into the live pipeline -----------------------------------------------------------------

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DIM = 384  # the collection's size: all-MiniLM-L6-v2's


@pytest.fixture
def redis_url(embedded_redis: EmbeddedRedis) -> Iterator[str]:
    client = redis.Redis.from_url(embedded_redis.url)
    client.flushdb()
    yield embedded_redis.url
    client.flushdb()
    client.close()


def formula_v1_in_process() -> InProcessRanker:
    """The embedded feed's own ranker: ``formula-v1`` called in process, seed 42."""
    return InProcessRanker(Scorer(AbSplit("formula-v1"), {"formula-v1": formula_v1}), seed=42)


def build_world(data_dir: Path, redis_url: str, extension_settings: dict[str, str | None]) -> Stack:
    """A small world written through labcore's own paths, using every extension point on the way:
    fan-out (01), interest updates (03), the affinity batch (05); the feed then uses the rest."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    settings = Settings(data_dir=data_dir, redis_url=redis_url, celebrity_threshold=2, **extension_settings)
    vectors = QdrantEdgeVectors(data_dir / "qdrant-edge")
    vectors.ensure_collection()
    # Feast's server stopped (a fake that is down): every feed falls back to the Redis feature cache.
    feast_stopped = MemoryFeatures(down=True)
    stack = build_stack(settings, vectors=vectors, features=feast_stopped, ranker=formula_v1_in_process())
    try:
        write_world(stack)
    except BaseException:
        stack.close()
        raise
    return stack


def write_world(stack: Stack) -> None:
    settings = stack.settings
    stack.store.create_schema()
    writes = WritePath(stack)
    for name in ("reader", "alice", "bob", "star", "carol", "fan1", "fan2"):
        writes.create_user(name, name.title(), user_id=name)
    for follower, followee in [("reader", "alice"), ("reader", "bob"), ("reader", "star"), ("fan1", "star"), ("fan2", "star")]:
        writes.follow(follower, followee)
    rng = np.random.default_rng(7)
    topics = {author: rng.normal(size=DIM) for author in ("alice", "bob", "star", "carol", "reader")}
    items = []
    for author, count in [("alice", 5), ("bob", 3), ("star", 2), ("carol", 4), ("reader", 1)]:
        for i in range(count):
            created = NOW - timedelta(hours=3 * i + len(author))
            post = writes.create_post(author, f"{author} post {i}", post_id=f"{author}-{i}", created_at=created)
            vector = (topics[author] + 0.3 * rng.normal(size=DIM)).astype(np.float32)
            items.append(VectorItem(post.id, vector / np.linalg.norm(vector), author, to_epoch(created)))
    stack.vectors.upsert(items)

    # the fan-out worker's job, with the configured fan-out function (exercise 01)
    OutboxRelay(stack.store, stack.events).publish_pending()
    subscription = stack.events.subscribe(TOPIC_NEW_POSTS, "fanout", "fanout-test")
    handler = FanoutHandler(stack.store, stack.mailboxes, extensions.load(settings, "fanout"))
    while records := subscription.poll(500, 50):
        handler(records)
        subscription.ack(records)

    # likes: the evidence of affinity (05) and the moves of the interest vector (03)
    liked = {item.post_id: item.vector for item in items}
    for post_id in ("carol-0", "carol-1", "alice-1", "alice-2"):
        writes.like("reader", post_id)
        stack.interests.update_from_like("reader", liked[post_id])
    materialize(settings, stack.store.engine, None, stack.feature_cache, embeddings_for=stack.vectors.vectors)

    # what the reader saw: an hour ago (filtered) and two days ago (not any more) — exercise 04
    stack.impressions.insert(
        [
            ImpressionLogged("reader", "alice-0", to_epoch(NOW) - 3600),
            ImpressionLogged("reader", "bob-0", to_epoch(NOW) - 48 * 3600),
        ]
    )


def feed_of(stack: Stack) -> FeedResult:
    return FeedPipeline(stack).run("reader", limit=6, now=to_epoch(NOW))


def summary(result: FeedResult) -> dict[str, Any]:
    return {
        "items": [(i.post.id, i.source, round(i.score or 0.0, 9)) for i in result.items],
        "fallbacks": result.fallbacks,
        "feature_source": result.feature_source,
        "journeys": [
            (
                j.post_id, j.source, j.filtered, j.dropped, j.rank, j.demoted,
                {k: round(v, 6) if isinstance(v, float) else v for k, v in sorted(j.features.items())},
            )
            for j in sorted(result.journeys, key=lambda j: j.post_id)
        ],
    }  # fmt: skip


DEFAULTS: dict[str, str | None] = {name: None for name in EXTENSION_POINTS}
SOLUTIONS: dict[str, str | None] = {
    "fanout": "exercises.solutions.01_fanout:deliver",
    "mailbox_reader": "exercises.solutions.02_mailbox_regeneration:read_mailbox",
    "interest_update": "exercises.solutions.03_interest_vectors:ema_step",
    "seen_query": "exercises.solutions.04_impression_filter:seen_query",
    "affinity": "exercises.solutions.05_affinity:affinity_score",
    "topic_similarity": "exercises.solutions.06_topic_similarity:topic_similarity",
    "reranker": "exercises.solutions.07_diversity:rerank",
    "feature_fallback": "exercises.solutions.08_feature_fallback:fetch_features",
}


def test_the_solutions_plugged_in_build_the_same_feed_as_labcore(tmp_path: Path, redis_url: str) -> None:
    runs = {}
    for label, chosen in (("labcore", DEFAULTS), ("solutions", SOLUTIONS)):
        stack = build_world(tmp_path / label, redis_url, chosen)
        try:
            if label == "solutions":  # the settings really select the learner-side code
                pipeline = FeedPipeline(stack)
                assert pipeline._rerank.__module__ == "exercises.solutions.07_diversity"
                assert stack.interests.step.__module__ == "exercises.solutions.03_interest_vectors"
                assert stack.impressions.query.__module__ == "exercises.solutions.04_impression_filter"
            result = feed_of(stack)
            runs[label] = (summary(result), stack.interests.get("reader"), stack.mailboxes.entries("reader"))
        finally:
            stack.close()
    (mine, my_vector, my_mailbox), (theirs, their_vector, their_mailbox) = runs["solutions"], runs["labcore"]
    # the scenario exercises what it should, in both runs alike
    journeys = {j[0]: j for j in theirs["journeys"]}
    assert theirs["fallbacks"] == ["features:redis-cache"] and theirs["feature_source"] == "redis-cache"
    assert journeys["alice-0"][2] == "seen_in_24h" and journeys["bob-0"][2] is None
    assert journeys["star-0"][1] == "celebrity" and journeys["carol-2"][1] == "discovery"
    assert any(j[5] == "author_cap" for j in journeys.values())
    assert journeys["alice-3"][6]["affinity_score"] > 0 and journeys["alice-3"][6]["topic_similarity"] is not None
    assert len(theirs["items"]) == 6
    # ...and the solutions' feed is labcore's, to the candidate
    assert mine == theirs
    np.testing.assert_allclose(my_vector, their_vector, atol=1e-6)
    assert my_mailbox == their_mailbox and my_mailbox


def test_a_starter_plugged_in_fails_with_what_to_implement(tmp_path: Path, redis_url: str) -> None:
    stack = build_world(tmp_path, redis_url, DEFAULTS | {"reranker": "exercises.07_diversity.starter:rerank"})
    try:
        pipeline = FeedPipeline(stack)
        with pytest.raises(NotImplementedError, match="exercise 07: implement rerank"):
            pipeline.run("reader", limit=6, now=to_epoch(NOW))

        from services.api.app import create_app

        response = TestClient(create_app(stack, pipeline=pipeline)).get("/feed/", params={"user_id": "reader"})
        assert response.status_code == 501
        assert "exercise 07: implement rerank" in response.json()["detail"]
    finally:
        stack.close()

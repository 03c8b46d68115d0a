"""Feast, ranking, vectors and the OLAP store stopped one at a time under concurrent feed reads.

``tests/e2e`` checks one request per fallback. Here four threads keep reading feeds through each
outage: no request fails, *every* response that ran inside the outage names the fallback, the
``feed_fallbacks_total`` counter grows by at least that many, and after the restart the primary
path comes back by itself.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labcore.lab.client import LabClient
from labcore.widgets.observability import metric_value, parse_metrics
from tests.conftest import RunningStack
from tests.faults.load_phases import Load
from tests.faults.stack import client
from tests.helpers import wait_for

OUTAGE_SECONDS = 2.5


@pytest.fixture(scope="module")
def world(fault_stack: RunningStack) -> Iterator[tuple[LabClient, list[str]]]:
    lab = client(fault_stack)
    authors = [lab.create_user(f"dep_author{i}")["user_id"] for i in range(6)]
    readers = [lab.create_user(f"dep_reader{i}")["user_id"] for i in range(8)]
    for i, reader in enumerate(readers):
        for author in authors[i % 3 : i % 3 + 3]:
            lab.follow(reader, author)
    posts = [lab.post(a, f"post {k} by {a}: cooking, travel and chess openings")["post_id"] for k in range(5) for a in authors]
    # a like gives every reader an interest vector, so discovery (the vectors path) runs
    for reader in readers:
        lab.like(reader, posts[0])
    wait_for(lambda: lab.inspect("vectors", limit=1)["count"] >= len(posts), "the posts are embedded", timeout=60)
    wait_for(lambda: all(not lab.feed(r)["fallbacks"] for r in readers), "every feed is on the primary path", timeout=30)
    yield lab, readers
    lab.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("service", "fallback", "field", "value"),
    [
        ("feature-server", "features:redis-cache", "feature_source", "redis-cache"),
        ("ranking", "ranking:recency", "model_version", "recency"),
        ("vectors", "vectors:social-only", "candidates_discovery", 0),
        ("impressions", "olap:redis-recent", None, None),
    ],
)
def test_every_response_during_an_outage_names_the_fallback_and_the_metric_counts_it(
    world: tuple[LabClient, list[str]], service: str, fallback: str, field: str | None, value: Any
) -> None:
    lab, readers = world
    counter = {"fallback": fallback, "component": fallback.split(":")[0]}
    before = parse_metrics(lab.metrics())
    n = itertools.count()
    calls = {"feed": lambda http: http.get("/feed/", params={"user_id": readers[next(n) % len(readers)]})}
    with Load(lab.info.api_url, calls, threads=4) as load:
        time.sleep(0.5)
        lab.stop(service)
        down_at = time.monotonic()
        assert lab.services()[service] == "stopped"
        time.sleep(OUTAGE_SECONDS)
        up_at = time.monotonic()
        lab.start(service)
        wait_for(lambda: lab.feed(readers[0])["fallbacks"] == [], f"{service} is back on the primary path", timeout=30)
        end_at = time.monotonic()
        time.sleep(0.5)
    after = parse_metrics(lab.metrics())

    failed = [(c.status, str(c.body)[:200]) for c in load.all() if c.status != 200]
    assert failed == []
    during = load.between(down_at, up_at)
    assert len(during) >= 4, "the read load ran through the outage"
    for call in during:
        assert fallback in call.body["fallbacks"], call.body["fallbacks"]
        assert call.body["items"], "degraded, not empty"
        if field:
            assert call.body[field] == value
    grew = metric_value(after, "feed_fallbacks_total", **counter) - metric_value(before, "feed_fallbacks_total", **counter)
    assert len(during) <= grew <= len(load.all())
    # resumed by itself: every read that started once the primary path was seen again is clean
    for call in [c for c in load.all() if c.started >= end_at]:
        assert call.body["fallbacks"] == [], call.body["fallbacks"]
        assert call.body["model_version"] == "formula-v1" and call.body["feature_source"] == "feast"

"""The `feedlab` commands a learner types, against a real `feedlab up` stack."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.conftest import RunningStack


def test_status_reports_every_component(running_stack: RunningStack) -> None:
    result = running_stack.feedlab("status")
    assert result.returncode == 0, result.stdout + result.stderr
    for component in ("sql", "redis", "media", "fanout-worker", "outbox-relay"):
        assert component in result.stdout


def test_up_twice_is_harmless(running_stack: RunningStack) -> None:
    result = running_stack.feedlab("up")
    assert result.returncode == 0 and "already running" in result.stdout


def test_seed_tiny_world_then_feeds_have_posts(running_stack: RunningStack) -> None:
    first = running_stack.feedlab("seed", "--size", "tiny", "--quiet")
    assert first.returncode == 0, first.stderr
    again = running_stack.feedlab("seed", "--size", "tiny", "--quiet")
    assert "already loaded" in again.stdout

    from labcore.world import generate_world

    world = generate_world("tiny", 42)
    api = httpx.Client(base_url=running_stack.api_url, timeout=10)
    # the most-following user of the world reads a non-empty feed
    follows = {}
    for edge in world.follows:
        follows[edge.follower_id] = follows.get(edge.follower_id, 0) + 1
    reader = max(follows, key=follows.get)
    feed = api.get("/feed/", params={"user_id": reader}).json()
    assert feed["items"], feed
    sources = {item["source"] for item in feed["items"]}
    assert "social" in sources and sources <= {"social", "celebrity", "discovery"}


def test_compose_profile_without_docker_engine_fails_clearly() -> None:
    env = os.environ | {"PATH": "/nonexistent"}
    result = subprocess.run(
        [sys.executable, "-m", "labcore.cli", "up", "--profile", "compose"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Docker" in result.stderr

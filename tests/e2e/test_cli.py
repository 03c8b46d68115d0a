"""The `feedlab` commands a learner types, against a real `feedlab up` stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningStack

REPO_ROOT = Path(__file__).resolve().parents[2]


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

    from labcore.lab.world import generate_world

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


# --- `feedlab up --profile compose` against stand-in `docker` commands (no engine needed) --------
# Each fake answers `docker info` / `docker compose version` like a real CLI in that situation.
NO_ENGINE = """#!/bin/sh
if [ "$1" = info ]; then
  echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
  exit 1
fi
exit 0
"""
NO_COMPOSE_PLUGIN = """#!/bin/sh
if [ "$1" = compose ]; then echo "docker: unknown command: docker compose" >&2; exit 1; fi
exit 0
"""
RECORDS_CALLS = """#!/bin/sh
echo "$@" >> "${0%/*}/calls"
exit 0
"""


def _feedlab_up_compose(bin_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labcore.lab.cli", "up", "--profile", "compose"],
        env=os.environ | {"PATH": str(bin_dir)}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _fake_docker(bin_dir: Path, script: str | None) -> Path:
    bin_dir.mkdir(exist_ok=True)
    if script is not None:
        docker = bin_dir / "docker"
        docker.write_text(script)
        docker.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    ("script", "says"),
    [
        (None, "`docker` is not on PATH"),
        (NO_ENGINE, "needs a running Docker engine"),
        (NO_COMPOSE_PLUGIN, "needs Docker Compose v2"),
    ],
    ids=["no-docker", "client-without-engine", "no-compose-plugin"],
)
def test_compose_profile_without_docker_fails_clearly(tmp_path: Path, script: str | None, says: str) -> None:
    result = _feedlab_up_compose(_fake_docker(tmp_path / "bin", script))
    assert result.returncode != 0
    assert says in result.stderr
    if script is NO_ENGINE:
        assert "Cannot connect to the Docker daemon" in result.stderr  # the engine's own words
        assert "feedlab up" in result.stderr  # and the way out: the embedded profile


def test_compose_profile_runs_compose_up_wait_on_the_compose_file(tmp_path: Path) -> None:
    bin_dir = _fake_docker(tmp_path / "bin", RECORDS_CALLS)
    result = _feedlab_up_compose(bin_dir)
    assert result.returncode == 0, result.stderr
    calls = (bin_dir / "calls").read_text().splitlines()
    assert calls[-1] == "compose -f compose/docker-compose.yml up -d --wait"


@pytest.mark.parametrize(("command", "expected"), [("down", "compose -f compose/docker-compose.yml down"), ("status", "compose -f compose/docker-compose.yml ps")])
def test_compose_profile_down_and_status_go_through_compose(tmp_path: Path, command: str, expected: str) -> None:
    bin_dir = _fake_docker(tmp_path / "bin", RECORDS_CALLS)
    result = subprocess.run(
        [sys.executable, "-m", "labcore.lab.cli", command, "--profile", "compose"],
        env=os.environ | {"PATH": str(bin_dir)}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (bin_dir / "calls").read_text().splitlines()[-1] == expected
    if command == "down":
        assert result.returncode == 0, result.stderr
    else:  # compose answered, but no API listens on localhost:8000 here: not healthy
        assert "api http://localhost:8000" in result.stdout


def test_compose_profile_down_without_docker_fails_clearly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labcore.lab.cli", "down", "--profile", "compose"],
        env=os.environ | {"PATH": str(_fake_docker(tmp_path / "bin", None))}, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "`docker` is not on PATH" in result.stderr

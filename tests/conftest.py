"""Shared fixtures: real servers for every backend.

The embedded backends always run. The machine's MariaDB and Redis are required: when
``FEEDLAB_REQUIRE_SERVERS=1`` (set by ``make test`` and CI) an unreachable server is a failure, not a
skip, so CI can never go green without the real-server tests having run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from labcore.engines.redis import EmbeddedRedis
from labcore.settings import OS_PICKED_PORTS

MYSQL_URL = os.environ.get("FEEDLAB_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("FEEDLAB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVERS = os.environ.get("FEEDLAB_REQUIRE_SERVERS") == "1"


def _unreachable(what: str, exc: Exception) -> None:
    message = f"{what} unreachable: {exc}"
    if REQUIRE_SERVERS:
        pytest.fail(message + " (FEEDLAB_REQUIRE_SERVERS=1: real-server tests must run)")
    pytest.skip(message)


# --- the real engines (labcore.engines), started once per session when a test asks -----------

class SessionEngines:
    """Engines started on free ports under one temp folder, each on first request, all stopped at the end.

    Not yet in the cache (cold): fetched/built first when ``FEEDLAB_REQUIRE_SERVERS=1`` (``make test``,
    CI), skipped otherwise with the command that warms the cache. An engine that cannot start fails the
    test under ``FEEDLAB_REQUIRE_SERVERS=1`` and skips it otherwise.
    """

    def __init__(self, run_dir: Path) -> None:
        from labcore.engines.stack import Ports

        self.run_dir = run_dir
        self.ports = Ports.free()
        self._started: dict[str, object] = {}
        self._failed: dict[str, str] = {}

    def get(self, name: str):  # -> the started engine (labcore.engines.<name>)
        from labcore.engines.stack import TOPICS, make_engine
        from labcore.errors import BackendUnavailable
        from labcore.settings import Settings

        if name in self._started:
            return self._started[name]
        if name in self._failed:
            _unreachable(f"engine {name}", RuntimeError(self._failed[name]))
        bootstrap = self.get("kafka").bootstrap if name == "pinot" else None
        engine = make_engine(name, Settings(), self.run_dir, self.ports, bootstrap)
        if not engine.is_fetched() and not REQUIRE_SERVERS:
            pytest.skip(f"engine {name} is not in the cache: run `python -m labcore.engines fetch {name}` first")
        try:
            engine.start()
            if name == "kafka":
                engine.create_topics(TOPICS)
        except BackendUnavailable as exc:
            engine.stop()
            self._failed[name] = str(exc)
            _unreachable(f"engine {name}", exc)
        self._started[name] = engine
        return engine

    def stop(self) -> None:
        for engine in reversed(list(self._started.values())):
            engine.stop()
        self._started.clear()


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionEngines]:
    started = SessionEngines(tmp_path_factory.mktemp("engines"))
    yield started
    started.stop()


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def system_redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unreachable(f"Redis at {REDIS_URL}", exc)
    return REDIS_URL


@pytest.fixture(params=["embedded", "system"])
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A clean Redis database on each real server: the embedded child and the machine's."""
    if request.param == "embedded":
        url = request.getfixturevalue("embedded_redis").url
    else:
        url = request.getfixturevalue("system_redis_url")
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """A fresh database on the machine's MariaDB (TiDB's MySQL protocol), dropped afterwards."""
    admin = sa.create_engine(MYSQL_URL, pool_pre_ping=True)
    name = f"feedlab_test_{uuid.uuid4().hex[:8]}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _unreachable(f"MariaDB at {MYSQL_URL}", exc)
    yield str(sa.engine.make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False))
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each SQL backend the lab supports: a SQLite file and MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feed.db'}"
    return request.getfixturevalue("mysql_url")


# --- promtool: Prometheus's own linter for the exposition format ------------------------------

@pytest.fixture(scope="session")
def promtool() -> object:
    """``check(text)``: run ``promtool check metrics`` on an exposition, failing the test on any finding.

    Required, never skipped: a missing promtool fails with how to install it (``.ci/run`` does).
    """
    import shutil

    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package (apt-get install prometheus)")

    def check(text: str) -> None:
        result = subprocess.run([binary, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"promtool check metrics: {result.stdout}{result.stderr}"

    return check


# --- a whole stack, started the way a user starts it: `feedlab up` in a subprocess -----------

@dataclass(frozen=True)
class RunningStack:
    api_url: str
    data_dir: Path
    env: dict[str, str]
    feature_server_url: str = ""

    def feedlab(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "labcore.lab.cli", *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    data_dir = tmp_path_factory.mktemp("feedlab")
    env = os.environ | {"FEEDLAB_DATA_DIR": str(data_dir)} | OS_PICKED_PORTS
    env.pop("FEEDLAB_REDIS_URL", None)  # the runtime starts its own redis-server
    stack = RunningStack("", data_dir, env)
    up = stack.feedlab("up")
    assert up.returncode == 0, f"feedlab up failed:\n{up.stdout}\n{up.stderr}\n" + (
        (data_dir / "runtime.log").read_text() if (data_dir / "runtime.log").exists() else ""
    )
    info = json.loads((data_dir / "runtime.json").read_text())
    yield RunningStack(info["api_url"], data_dir, env, info["feature_server_url"])
    down = stack.feedlab("down")
    assert down.returncode == 0, down.stderr

"""What every exercise's tests share, visible (``NN_topic/``) and hidden (``hidden/NN_topic/``).

* ``@pytest.mark.points(n)`` — what a test is worth (1 without the marker). The points and the
  exercise go into each test's JUnit properties, which is what ``feedlab grade`` adds up.
* ``exercise`` — the module under test: the learner's ``NN_topic/starter.py``, or with
  ``--solutions`` the reference ``solutions/NN_topic.py``.
* Real embedded backends for the exercises that need them: a ``redis-server`` child process
  (``labcore.engines.redis.EmbeddedRedis``) and a SQLite ``SqlStore`` in a temp folder.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.engines.redis import EmbeddedRedis
from labcore.adapters.sql.store import SqlStore
from labcore.bootstrap import redis_client

EXERCISE_FOLDER = re.compile(r"^\d\d_\w+$")


def exercise_of(path: Path) -> str:
    """The ``NN_topic`` folder a test file belongs to (visible or hidden)."""
    for part in reversed(Path(path).parts):
        if EXERCISE_FOLDER.match(part):
            return part
    raise LookupError(f"{path} is not inside an NN_topic exercise folder")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--solutions",
        action="store_true",
        default=False,
        help="test the reference solutions (exercises/solutions/NN_topic.py) instead of the starters",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("points")
        points = marker.args[0] if marker and marker.args else 1
        if not isinstance(points, int) or isinstance(points, bool) or points < 0:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.points takes a whole number >= 0, got {points!r}")
        item.user_properties.append(("exercise", exercise_of(item.path)))
        item.user_properties.append(("points", points))


@pytest.fixture
def exercise(request: pytest.FixtureRequest) -> ModuleType:
    """The code under test: the learner's starter, or the reference solution with ``--solutions``."""
    folder = exercise_of(request.path)
    solutions = request.config.getoption("solutions")
    module = f"exercises.solutions.{folder}" if solutions else f"exercises.{folder}.starter"
    try:
        return importlib.import_module(module)
    except Exception as exc:  # a typo in the learner's file: say so in one line, not a traceback
        where = f"exercises/solutions/{folder}.py" if solutions else f"exercises/{folder}/starter.py"
        pytest.fail(f"{where} does not import — {type(exc).__name__}: {exc}", pytrace=False)


# --- embedded backends --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_db(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A client on an empty database of the embedded redis-server (the same client the stack uses)."""
    client = redis_client(redis_server.url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def mailboxes(redis_db: redis.Redis) -> RedisMailboxes:
    return RedisMailboxes(redis_db, cap=800, ttl_seconds=7 * 24 * 3600)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    """The SQL store on a fresh SQLite file: users, follows, posts."""
    sql = SqlStore.from_url(f"sqlite:///{tmp_path / 'feed.db'}")
    sql.create_schema()
    yield sql
    sql.dispose()

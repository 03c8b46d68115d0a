"""The Feast deployment of the lab: a generated ``feature_store.yaml`` plus the repo's definitions.

The definitions (entities, sources, feature views, feature services) live, as in any Feast repo, in
``services/feature_store/repo/definitions.py``. What differs per machine and profile — where the
registry and parquet files go, SQLite or Redis as the online store, which Redis — is written at run
time from the settings into ``<data_dir>/feast/feature_store.yaml``:

* ``project: social_feed``, ``provider: local``;
* registry: a file, ``<data_dir>/feast/registry.db``;
* offline store: ``file`` (Dask over parquet), snapshots under ``<data_dir>/feast/data/``;
* online store: ``sqlite`` at ``<data_dir>/feast/online.db`` (embedded default) or ``redis`` on the
  stack's Redis (compose default), chosen by ``settings.resolved_feast_online_store()``;
* ``entity_key_serialization_version: 3`` — the only non-deprecated scheme in Feast 0.67.

``<data_dir>/feast`` is the *repo path*: Feast resolves the definitions' relative file-source paths
(``data/post_stats.parquet``) against it, so the definitions never need to know the data dir and the
CLI works on a running lab: ``feast -c .feedlab/feast feature-services list``.

Two ``FeatureStore`` objects, not one
-------------------------------------
Feast's file registry is rewritten in place (truncate, then write) by ``apply`` *and* by every
``materialize`` (it records the view's state and materialized interval), and a ``FeatureStore``
that shares the registry re-reads it when the file changes. A feature server reading it mid-write
sees views, services and push sources missing ("feature service ranking_features does not exist").
Feast's SQLite online store also keeps one ``sqlite3`` connection per store object, which is not
safe for concurrent writers and readers in different threads. So:

* the **writing** store (``open_store``) applies, materializes and pushes — its writes are
  serialized by ``write_lock(store)``;
* the **serving** store (``open_serving_store``) belongs to the feature server alone: it reads the
  registry once (``cache_mode: thread`` + ``cache_ttl_seconds: 0`` = never re-read implicitly) and
  has its own SQLite connection. The online store in WAL mode lets it read while the writer writes.

Definitions only change with the code, so "restart the server to see new definitions" is the
honest price for never serving from half a registry.

Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sqlite3
import sys
import threading
import weakref
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import redis

from labcore.errors import BackendUnavailable, InvalidInput
from labcore.settings import Settings

if TYPE_CHECKING:  # feast is heavy to import (1-5 s): only the functions that need it import it
    import feast

PROJECT = "social_feed"
REPO_DIR = Path(__file__).resolve().parents[2] / "services" / "feature_store" / "repo"
DEFINITIONS_FILE = REPO_DIR / "definitions.py"


def feast_dir(settings: Settings) -> Path:
    """Feast's repo path for this lab: yaml, registry, online.db and the parquet snapshots."""
    return settings.data_dir.resolve() / "feast"


def offline_data_dir(settings: Settings) -> Path:
    return feast_dir(settings) / "data"


def redis_connection_string(url: str) -> str:
    """A redis:// URL in the ``host:port,db=N,password=…`` form Feast's Redis online store parses.

    Short socket timeouts so a down Redis fails a feature request quickly instead of hanging the
    feature server (the feed then falls back to the Redis cache — or SQL).
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise InvalidInput(f"not a redis:// URL: {url!r}")
    parts = [f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"]
    db = (parsed.path or "/0").lstrip("/") or "0"
    parts.append(f"db={int(db)}")
    if parsed.username:
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.password:
        password = unquote(parsed.password)
        if "," in password:
            raise InvalidInput("Feast's Redis connection string cannot carry a password with a comma")
        parts.append(f"password={password}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    parts += ["socket_connect_timeout=1", "socket_timeout=2"]
    return ",".join(parts)


def render_feature_store_yaml(
    settings: Settings, *, redis_url: str | None = None, online_store: str | None = None
) -> Path:
    """Write ``<data_dir>/feast/feature_store.yaml`` from the settings; returns its path.

    ``redis_url`` overrides ``settings.redis_url`` (the embedded runtime only knows its Redis once the
    child server is up); ``online_store`` overrides ``settings.resolved_feast_online_store()``.
    """
    kind = online_store or settings.resolved_feast_online_store()
    root = feast_dir(settings)
    if kind == "redis":
        url = redis_url or settings.redis_url
        if not url:
            raise InvalidInput("the redis online store needs a Redis URL (settings.redis_url)")
        online = f"  type: redis\n  connection_string: \"{redis_connection_string(url)}\"\n"
    elif kind == "sqlite":
        online = f"  type: sqlite\n  path: {_yaml_str(root / 'online.db')}\n"
    else:
        raise InvalidInput(f"unknown feast online store {kind!r} (sqlite | redis)")
    text = (
        "# Generated by labcore.features.repo.render_feature_store_yaml: change the settings, not this.\n"
        f"project: {PROJECT}\n"
        "provider: local\n"
        "registry:\n"
        "  registry_type: file\n"
        f"  path: {_yaml_str(root / 'registry.db')}\n"
        # Read the registry file once per FeatureStore, never again behind our back: it is rewritten
        # in place, and a re-read during a write sees half a registry (see the module docstring).
        "  cache_mode: thread\n"
        "  cache_ttl_seconds: 0\n"
        # Feast >= 0.64 refuses to serve a view while it is MATERIALIZING (feast#6780), which would
        # make every batch an outage. Keep serving the previous values instead.
        "  serve_features_while_materializing: true\n"
        "offline_store:\n"
        "  type: file\n"
        "online_store:\n"
        f"{online}"
        "entity_key_serialization_version: 3\n"
    )
    root.mkdir(parents=True, exist_ok=True)
    offline_data_dir(settings).mkdir(parents=True, exist_ok=True)
    path = root / "feature_store.yaml"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(text)
        tmp.replace(path)  # a concurrent reader sees the old file or the new one, never half of one
    return path


def _yaml_str(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the definitions --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def load_definitions(path: Path = DEFINITIONS_FILE) -> ModuleType:
    """Import the repo's ``definitions.py`` by path, once (the repo is not a Python package)."""
    name = "feedlab_feature_repo_definitions"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no Feast definitions at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def feast_objects(module: ModuleType | None = None) -> list[Any]:
    """Every Feast object the definitions module declares, the way ``feast apply`` collects them."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    module = module or load_definitions()
    kinds = (Entity, DataSource, FeatureView, FeatureService)
    objects: list[Any] = []
    for value in vars(module).values():
        if isinstance(value, kinds) and not any(value is seen for seen in objects):
            objects.append(value)
    return objects


def apply_definitions(store: feast.FeatureStore) -> None:
    """``feast apply``: register the definitions and create the online store's tables."""
    with write_lock(store):
        store.apply(feast_objects())
        _fingerprint_file(store).write_text(_fingerprint(store))


def ensure_applied(store: feast.FeatureStore) -> bool:
    """``feast apply`` only if the definitions or the yaml changed since the last apply.

    An apply rewrites the registry, so applying on every materialization would be pointless churn
    for every reader of the file. A fingerprint of ``definitions.py`` + ``feature_store.yaml`` next
    to the registry says whether anything changed. Returns whether it applied.
    """
    marker = _fingerprint_file(store)
    registry = Path(store.config.registry.path)
    if registry.exists() and marker.exists() and marker.read_text() == _fingerprint(store):
        return False
    apply_definitions(store)
    return True


def _fingerprint_file(store: feast.FeatureStore) -> Path:
    return Path(store.repo_path) / "applied.sha256"


def _fingerprint(store: feast.FeatureStore) -> str:
    digest = hashlib.sha256(DEFINITIONS_FILE.read_bytes())
    digest.update((Path(store.repo_path) / "feature_store.yaml").read_bytes())
    return digest.hexdigest()


# --- one lock per writing store ---------------------------------------------------------------

_locks: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def write_lock(store: feast.FeatureStore) -> threading.RLock:
    """The lock that serializes apply, materialize and pushes on one ``FeatureStore``.

    Its registry cache is mutated in place by materialize (a push looking up its view at that
    moment may not find it) and its SQLite connection must not run two transactions at once.
    """
    with _locks_guard:
        lock = _locks.get(store)
        if lock is None:
            lock = _locks[store] = threading.RLock()
        return lock


# --- opening stores ---------------------------------------------------------------------------


def open_store(
    settings: Settings,
    *,
    redis_url: str | None = None,
    online_store: str | None = None,
    apply: bool = True,
) -> feast.FeatureStore:
    """The *writing* store: write the yaml, open Feast on it and (by default) ``ensure_applied``.

    A Redis online store that cannot be reached surfaces as ``BackendUnavailable("features")``.
    """
    from feast import FeatureStore

    _quiet_known_advice()
    yaml_path = render_feature_store_yaml(settings, redis_url=redis_url, online_store=online_store)
    store = FeatureStore(repo_path=str(yaml_path.parent), fs_yaml_file=yaml_path)
    if apply:
        try:
            ensure_applied(store)
        except (redis.RedisError, OSError, sqlite3.Error) as exc:
            raise BackendUnavailable("features", f"feast apply failed: {exc}") from exc
        if store.config.online_store.type == "sqlite":
            _enable_wal(Path(store.config.online_store.path))
    return store


def open_serving_store(
    settings: Settings, *, redis_url: str | None = None, online_store: str | None = None
) -> feast.FeatureStore:
    """The feature server's own store: same yaml, own registry snapshot, own SQLite connection.

    Open it after the writing store applied the definitions (``open_store``).
    """
    return open_store(settings, redis_url=redis_url, online_store=online_store, apply=False)


def open_training_store(repo_dir: Path) -> feast.FeatureStore:
    """A running lab's Feast repo (``<data_dir>/feast``) as it is, for ``get_historical_features``.

    Unlike ``open_store`` it writes nothing — not even the yaml, which belongs to the runtime that
    rendered it from its own settings (a notebook's settings may differ).
    """
    from feast import FeatureStore

    yaml_path = Path(repo_dir) / "feature_store.yaml"
    if not yaml_path.exists():
        raise InvalidInput(f"no Feast repo at {repo_dir}: is the stack running (feedlab up)?")
    _quiet_known_advice()
    return FeatureStore(repo_path=str(yaml_path.parent), fs_yaml_file=yaml_path)


class _KnownAdvice(logging.Filter):
    """Drops Feast's two advisory warnings about ``serve_features_while_materializing``.

    They say the flag targets SQL registries and that thread-mode caches may lag. We set it on
    purpose for a file registry read once per store (see the module docstring), so on every store
    opened they would only be noise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "serve_features_while_materializing" not in record.getMessage()


def _quiet_known_advice() -> None:
    feast_config_log = logging.getLogger("feast.repo_config")
    if not any(isinstance(f, _KnownAdvice) for f in feast_config_log.filters):
        feast_config_log.addFilter(_KnownAdvice())


def _enable_wal(path: Path) -> None:
    """WAL on Feast's SQLite online store (persistent in the file): readers never wait for a batch."""
    if not path.exists():
        return
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()

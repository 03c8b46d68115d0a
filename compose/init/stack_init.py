"""One-shot steps that prepare the full stack, run by the init services of ``docker-compose.yml``
and by the Jobs of ``k8s/jobs/`` (the service images carry this file at ``/app/compose/init``):

    python compose/init/stack_init.py sql            # the database and labcore's tables
    python compose/init/stack_init.py bucket         # the media bucket (FEEDLAB_S3_BUCKET)
    python compose/init/stack_init.py pinot --controller http://pinot-controller:9000
    python compose/init/stack_init.py feast          # feast apply + a first materialization
    python compose/init/stack_init.py runtime-file   # <data_dir>/runtime.json for labcore.connect()

Every step reads the same ``FEEDLAB_*`` settings as the services, goes through labcore's own code
(``SqlStore``, ``build_media``, ``feature_repo``) so it creates exactly what labcore later uses, is
idempotent, and retries while its target is still starting: compose orders the steps with
healthchecks, Kubernetes starts Jobs and servers together. Kafka topics are created by the Kafka
image's own ``kafka-topics.sh`` (see the ``kafka-init`` service).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from labcore.adapters.sql.store import SqlStore
from labcore.bootstrap import build_media, build_stack
from labcore.errors import LabError
from labcore.features.repo import open_store
from labcore.features.batch import materialize
from labcore.settings import Settings

log = logging.getLogger("stack_init")

PINOT_DIR = Path(__file__).resolve().parents[1] / "pinot"
PINOT_SCHEMA = PINOT_DIR / "impressions_schema.json"
PINOT_TABLE = PINOT_DIR / "impressions_realtime_table.json"
BROKER_LIST = "stream.kafka.broker.list"


def not_ready(exc: Exception) -> bool:
    """What a step may see while its target is still coming up; anything else is a real failure."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500  # a 4xx is our request's fault: retrying cannot help
    return isinstance(exc, (LabError, OSError, httpx.TransportError, sa.exc.OperationalError))


def retry(step: Callable[[], Any], what: str, attempts: int = 60, delay_seconds: float = 2.0) -> Any:
    """Run ``step`` until it stops failing with a not-ready error (two minutes by default)."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except Exception as exc:
            if attempt == attempts or not not_ready(exc):
                raise
            log.info("%s not ready yet (%s); retrying in %.0fs", what, exc, delay_seconds)
            time.sleep(delay_seconds)
    return None  # unreachable: the last attempt returns or raises


# --- the steps ----------------------------------------------------------------------------------
def create_sql_schema(settings: Settings) -> None:
    """Create the database named in the SQL URL (MySQL/TiDB start without it), then the tables."""
    url = settings.resolved_sql_url()
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "mysql" and parsed.database:
        if not re.fullmatch(r"[A-Za-z0-9_]+", parsed.database):
            raise SystemExit(f"refusing to create a database named {parsed.database!r}")
        # URL.set(database=None) means "leave it", not "none": connect to the server with no database.
        server = sa.create_engine(parsed._replace(database=None), pool_pre_ping=True)
        try:
            with server.begin() as conn:
                conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}`"))
        finally:
            server.dispose()
    store = SqlStore.from_url(url)
    try:
        store.create_schema()
    finally:
        store.dispose()
    log.info("SQL schema ready in %s", parsed.render_as_string(hide_password=True))


def create_bucket(settings: Settings) -> None:
    """The media bucket, created by the S3 adapter itself (``S3Media.ensure_bucket``)."""
    build_media(settings)
    log.info("bucket %r ready at %s", settings.s3_bucket, settings.s3_endpoint)


def create_pinot_table(controller_url: str, kafka_bootstrap: str, client: httpx.Client | None = None) -> bool:
    """Add (or update) the impressions schema, then add the real-time table unless it exists.

    The table consumes ``kafka_bootstrap`` (the settings' broker, which the JSON file names only as
    a default). Returns whether the table was created now.
    """
    schema = json.loads(PINOT_SCHEMA.read_text())
    table = json.loads(PINOT_TABLE.read_text())
    for stream in table["ingestionConfig"]["streamIngestionConfig"]["streamConfigMaps"]:
        stream[BROKER_LIST] = kafka_bootstrap
    http = client or httpx.Client(base_url=controller_url, timeout=30.0)
    try:
        http.post("/schemas", params={"override": "true"}, json=schema).raise_for_status()
        existing = http.get("/tables")
        existing.raise_for_status()
        if table["tableName"] in existing.json().get("tables", []):
            log.info("Pinot table %r already exists", table["tableName"])
            return False
        http.post("/tables", json=table).raise_for_status()
        log.info("Pinot table %r created, consuming %s", table["tableName"], kafka_bootstrap)
        return True
    finally:
        if client is None:
            http.close()


def apply_features(settings: Settings) -> None:
    """``feast apply`` into the shared registry, then materialize SQL → parquet → the online store."""
    stack = build_stack(settings)
    try:
        store = open_store(settings, redis_url=settings.redis_url)  # applies when definitions changed
        report = materialize(
            settings, stack.store.engine, store, stack.feature_cache, embeddings_for=stack.vectors.vectors
        )
        log.info("features applied and materialized: %s", report)
    finally:
        stack.close()


def write_runtime_file(settings: Settings, api_url: str) -> Path:
    """Describe the running stack the way ``labcore.connect()`` reads it (``RuntimeInfo``).

    Written inside a container of the stack, so every address is the in-network one.
    """
    info = {
        "pid": None,  # no runtime process to signal: compose owns the containers
        "profile": settings.profile,
        "api_url": api_url,
        "ranking_url": settings.resolved_ranking_url(),
        "feature_server_url": settings.resolved_feature_server_url(),
        "redis_url": settings.redis_url,
        "sql_url": settings.resolved_sql_url(),
        "data_dir": str(settings.data_dir.resolve()),
        "started_at": time.time(),
    }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.runtime_file.write_text(json.dumps(info, indent=2))
    return settings.runtime_file


# --- command line -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stack_init", description="Prepare the full stack, one step at a time.")
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("sql", help="the database and labcore's tables")
    steps.add_parser("bucket", help="the media bucket")
    pinot = steps.add_parser("pinot", help="the impressions schema and real-time table")
    pinot.add_argument("--controller", default="http://pinot-controller:9000", help="Pinot controller URL")
    steps.add_parser("feast", help="feast apply + materialize")
    runtime = steps.add_parser("runtime-file", help="runtime.json for labcore.connect()")
    runtime.add_argument("--api-url", default="http://api:8000", help="the API as seen from this container")
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    settings = Settings()
    if args.step == "sql":
        retry(lambda: create_sql_schema(settings), "SQL")
    elif args.step == "bucket":
        retry(lambda: create_bucket(settings), "the object store")
    elif args.step == "pinot":
        retry(lambda: create_pinot_table(args.controller, settings.kafka_bootstrap), "the Pinot controller")
    elif args.step == "feast":
        retry(lambda: apply_features(settings), "the feature store's backends")
    elif args.step == "runtime-file":
        print(write_runtime_file(settings, args.api_url))


if __name__ == "__main__":
    main()

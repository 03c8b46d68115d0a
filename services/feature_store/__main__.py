"""Feast's feature server as its own service (compose): ``python -m services.feature_store``.

Applies the definitions, materializes SQL → parquet → the Redis online store, serves Feast's own
protocol on ``FEEDLAB_FEATURE_PORT`` (6566), and re-materializes every ``FEEDLAB_FEATURE_BATCH_SECONDS``.
The embedded runtime does the same in-process (``labcore.lab.runtime``).
"""

from __future__ import annotations

import logging
import signal
import threading

from labcore.bootstrap import build_stack
from labcore.errors import LabError
from labcore.features.batch import materialize
from labcore.features.repo import open_serving_store, open_store
from labcore.features.server import FeatureServerThread
from labcore.settings import Settings

log = logging.getLogger("feature_store")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s feature-store %(levelname)s %(message)s")
    settings = Settings()
    stack = build_stack(settings)
    stack.store.create_schema()  # idempotent; the compose init job normally ran it already
    writer = open_store(settings, redis_url=settings.redis_url)

    def batch() -> None:
        report = materialize(
            settings, stack.store.engine, writer, stack.feature_cache, embeddings_for=stack.vectors.vectors
        )
        log.info("materialized %s users, %s posts, %s affinity pairs", report.users, report.posts, report.affinity_pairs)

    batch()
    serving = open_serving_store(settings, redis_url=settings.redis_url)
    server = FeatureServerThread(serving, "0.0.0.0", settings.feature_port).start()  # noqa: S104 - a container
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(settings.feature_batch_seconds):
            try:
                batch()
            except LabError as exc:
                log.warning("feature batch failed: %s", exc)
    finally:
        server.stop()
        stack.close()


if __name__ == "__main__":
    main()

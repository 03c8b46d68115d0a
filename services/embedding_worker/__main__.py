"""The embedding worker as its own process (compose).

    python -m services.embedding_worker

Runs three consumer loops in threads, sharing one model in memory:

* ``new-posts`` in group ``embedding`` as ``embedding-$FEEDLAB_WORKER_ID``: embed, upsert vectors,
  then write the new posts' fresh features (``labcore.workers.features``);
* ``engagements`` in group ``interests`` as ``interests-$FEEDLAB_WORKER_ID``: move interest vectors;
* ``engagements`` in group ``features`` as ``features-$FEEDLAB_WORKER_ID``: a like refreshes the
  post's counters and the liker→author affinity in Feast's online store.

Keep the worker id stable across restarts: a restarted consumer replays its own unacked events.
In the embedded profile the runtime runs the same loops itself (it owns Qdrant's local folder).
"""

from __future__ import annotations

import logging
import signal
import threading

from labcore.bootstrap import build_stack, build_workers
from labcore.errors import BackendUnavailable
from labcore.features.history import FeatureHistory
from labcore.features.repo import offline_data_dir, open_store
from labcore.features.writer import FeatureWriter
from labcore.observability.metrics import serve_metrics
from labcore.observability.tracing import setup_tracing
from labcore.settings import Settings
from labcore.workers.loop import ConsumerLoop

log = logging.getLogger("services.embedding_worker")


def run_loops(loops: tuple[ConsumerLoop, ...], stop: threading.Event) -> None:
    """Run each loop in its own thread until ``stop`` is set, then wait for all of them."""
    threads = [threading.Thread(target=loop.run, args=(stop,), name=loop.group, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s embedding %(levelname)s %(message)s")
    settings = Settings()
    setup_tracing(settings, "embedding-worker")
    if settings.metrics_port:  # Prometheus scrapes workers here (FEEDLAB_HOST=0.0.0.0 in a container)
        serve_metrics(settings.metrics_port, settings.host)
    stack = build_stack(settings)
    try:
        # Load the model before consuming: a broken install fails here, loudly, not per batch.
        stack.embedder.load()
        log.info("loaded %s in %.1fs", stack.embedder.model_name, stack.embedder.load_seconds or 0.0)
    except BackendUnavailable:
        log.exception("cannot start without the embedding model")
        stack.close()
        raise SystemExit(1) from None
    # Feast's registry and offline history live on the shared feature volume (compose: feast-init
    # applied it); pushed rows join the history, as in the runtime, for point-in-time training data.
    writer = FeatureWriter(
        open_store(settings, redis_url=settings.redis_url),
        stack.feature_cache,
        history=FeatureHistory(offline_data_dir(settings)),
    )
    loops = tuple(build_workers(stack, ("embedding-worker", "interest-worker", "feature-worker"), writer=writer).values())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run_loops(loops, stop)
    finally:
        stack.close()


if __name__ == "__main__":
    main()

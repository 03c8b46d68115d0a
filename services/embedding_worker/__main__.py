"""The embedding worker as its own process (compose).

    python -m services.embedding_worker

Runs two consumer loops in threads, sharing one model in memory:

* ``new-posts`` in group ``embedding`` as ``embedding-$FEEDLAB_WORKER_ID``: embed, upsert vectors;
* ``engagements`` in group ``interests`` as ``interests-$FEEDLAB_WORKER_ID``: move interest vectors.

Keep the worker id stable across restarts: a restarted consumer replays its own unacked events.
In the embedded profile the runtime runs the same loops itself (it owns Qdrant's local folder).
"""

from __future__ import annotations

import logging
import signal
import threading

from labcore.bootstrap import build_stack
from labcore.consumer import ConsumerLoop
from labcore.embedding_worker import worker_loops
from labcore.errors import BackendUnavailable
from labcore.metrics import serve_metrics
from labcore.settings import Settings
from labcore.tracing import setup_tracing

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
    loops = worker_loops(
        stack.events,
        stack.embedder,
        stack.vectors,
        stack.interests,
        stack.store,
        worker_id=settings.worker_id,
        batch_size=settings.embedding_batch_size,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        run_loops(loops, stop)
    finally:
        stack.close()


if __name__ == "__main__":
    main()

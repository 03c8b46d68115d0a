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

from labcore.bootstrap import build_workers
from labcore.errors import BackendUnavailable
from labcore.features.history import FeatureHistory
from labcore.features.repo import offline_data_dir, open_store
from labcore.features.writer import FeatureWriter
from labcore.workers.loop import run_until_signalled
from services.worker_process import start_worker_process

log = logging.getLogger("services.embedding_worker")


def main() -> None:
    stack = start_worker_process("embedding-worker", "embedding")
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
        open_store(stack.settings, redis_url=stack.settings.redis_url),
        stack.feature_cache,
        history=FeatureHistory(offline_data_dir(stack.settings)),
    )
    loops = tuple(build_workers(stack, ("embedding-worker", "interest-worker", "feature-worker"), writer=writer).values())
    try:
        run_until_signalled(*loops)
    finally:
        stack.close()


if __name__ == "__main__":
    main()

"""The fan-out worker as its own process (compose; also how the no-loss test crashes it).

    python -m services.fanout_worker

Consumes ``new-posts`` in group ``fanout`` as ``fanout-$FEEDLAB_WORKER_ID`` and writes mailboxes.
Keep the worker id stable across restarts: a restarted consumer replays its own unacked events.
"""

from __future__ import annotations

import logging

from labcore.bootstrap import build_stack, build_workers
from labcore.observability.metrics import serve_metrics
from labcore.observability.tracing import setup_tracing
from labcore.settings import Settings
from labcore.workers.loop import run_until_signalled


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fanout %(levelname)s %(message)s")
    settings = Settings()
    setup_tracing(settings, "fanout-worker")
    if settings.metrics_port:  # Prometheus scrapes workers here (FEEDLAB_HOST=0.0.0.0 in a container)
        serve_metrics(settings.metrics_port, settings.host)
    stack = build_stack(settings)
    (loop,) = build_workers(stack, ("fanout-worker",)).values()
    try:
        run_until_signalled(loop)
    finally:
        stack.close()


if __name__ == "__main__":
    main()

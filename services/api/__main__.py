"""The public API as its own process (compose, Kubernetes): ``python -m services.api``.

Serves ``services.api.app`` with uvicorn on ``FEEDLAB_HOST:FEEDLAB_API_PORT`` and runs the outbox
relay in this process, as the embedded runtime does: the write path wakes it after each commit, so a
post reaches ``new-posts`` within milliseconds instead of at the next poll.

The relay lives here rather than in a service of its own because exactly one relay may run (it takes
no lock on the outbox; two would publish every event twice), and there is exactly one API. Scaling
the API out means moving the relay into a singleton process first.

No admin routes: stopping and starting services is the embedded runtime's lesson; in compose a
learner stops a container instead (``docker compose -f compose/docker-compose.yml stop ranking``).
"""

from __future__ import annotations

import logging
import threading

import uvicorn

from labcore.bootstrap import build_stack
from labcore.feed.pipeline import FeedPipeline
from labcore.observability.tracing import setup_tracing
from labcore.settings import Settings
from labcore.write.outbox import OutboxRelay
from labcore.write.posts import WritePath
from services.api.app import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s api %(levelname)s %(message)s")
    settings = Settings()
    setup_tracing(settings, "api")
    stack = build_stack(settings)
    relay = OutboxRelay(stack.store, stack.events, poll_seconds=settings.outbox_poll_seconds)
    never = threading.Event()  # the relay runs as long as the process
    threading.Thread(target=relay.run, args=(never,), name="outbox-relay", daemon=True).start()
    workers = {"outbox-relay": lambda: {"published": relay.published, "last_error": relay.last_error}}
    app = create_app(stack, WritePath(stack, on_commit=relay.notify), workers, FeedPipeline(stack))
    # On SIGTERM uvicorn finishes the requests in flight, then re-raises the signal, which ends the
    # process. Nothing is lost with it: the relay only ever holds what SQL has already committed.
    uvicorn.run(app, host=settings.host, port=settings.api_port)


if __name__ == "__main__":
    main()

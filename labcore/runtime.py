"""The embedded runtime: the whole stack in one process, no Docker.

``feedlab up`` starts ``python -m labcore.runtime`` in the background. The runtime

1. starts a real ``redis-server`` child (unless ``FEEDLAB_REDIS_URL`` points at one),
2. builds the stack (SQLite file, Redis Streams, local media) and creates the schema,
3. runs the workers as threads — the outbox relay and the fan-out worker,
4. serves the API on ``FEEDLAB_API_PORT`` (8000; 0 picks a free port),
5. writes its endpoints to ``.feedlab/runtime.json`` for ``labcore.connect()`` and the CLI.

SIGTERM (``feedlab down``) stops everything in reverse order. A SIGKILL loses nothing that was
acknowledged: SQL committed it, Redis keeps an append-only file, and unacked events are replayed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import uvicorn

from labcore.adapters.redis.server import EmbeddedRedis, free_port
from labcore.bootstrap import Stack, build_stack
from labcore.consumer import ConsumerLoop
from labcore.domain import TOPIC_NEW_POSTS
from labcore.fanout import FanoutHandler
from labcore.outbox import OutboxRelay
from labcore.settings import Settings
from labcore.write_path import WritePath

log = logging.getLogger("labcore.runtime")


class Runtime:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.redis_server: EmbeddedRedis | None = None
        self.stack: Stack | None = None
        self.stop_event = threading.Event()
        self.threads: dict[str, threading.Thread] = {}
        self.reports: dict[str, Callable[[], dict[str, Any]]] = {}
        self.server: uvicorn.Server | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Runtime:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not settings.redis_url:
            self.redis_server = EmbeddedRedis(
                settings.data_dir / "redis", binary=settings.redis_server_binary, host=settings.host
            ).start()
            settings = settings.model_copy(update={"redis_url": self.redis_server.url})
        if settings.api_port == 0:
            settings = settings.model_copy(update={"api_port": free_port(settings.host)})
        self.settings = settings

        stack = self.stack = build_stack(settings)
        stack.store.create_schema()

        relay = OutboxRelay(stack.store, stack.events, poll_seconds=settings.outbox_poll_seconds)
        writes = WritePath(stack, on_commit=relay.notify)
        fanout = FanoutHandler(stack.store, stack.mailboxes)
        fanout_loop = ConsumerLoop(stack.events, TOPIC_NEW_POSTS, "fanout", "fanout-0", fanout)
        self._spawn("outbox-relay", relay.run)
        self._spawn("fanout-worker", fanout_loop.run)
        self.reports = {
            "outbox-relay": lambda: {"published": relay.published, "last_error": relay.last_error},
            "fanout-worker": lambda: {
                "posts": fanout.posts,
                "deliveries": fanout.deliveries,
                **asdict(fanout_loop.stats),
            },
        }

        from services.api.app import create_app  # the API is a deployable built on labcore

        app = create_app(stack, writes, self.reports)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.api_port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._spawn("api", self.server.run, uses_stop_event=False)
        self._wait_until_serving()
        self._write_runtime_file()
        log.info("feed lab runtime up: api %s", settings.resolved_api_url())
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.server is not None:
            self.server.should_exit = True
        for thread in self.threads.values():
            thread.join(timeout=10)
        if self.stack is not None:
            self.stack.close()
        if self.redis_server is not None:
            self.redis_server.stop()
        self.settings.runtime_file.unlink(missing_ok=True)

    def serve_forever(self) -> None:
        """Block until SIGTERM or SIGINT, then stop cleanly."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        try:
            while not self.stop_event.wait(0.5):
                if not self.threads["api"].is_alive():
                    log.error("the API thread died; stopping")
                    break
        finally:
            self.stop()

    # --- helpers ---------------------------------------------------------------------------------
    def _spawn(self, name: str, target: Callable[..., None], uses_stop_event: bool = True) -> None:
        args = (self.stop_event,) if uses_stop_event else ()
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads[name] = thread

    def _wait_until_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.server and self.server.started):
            if time.monotonic() > deadline or not self.threads["api"].is_alive():
                self.stop()
                raise RuntimeError(f"the API did not start on port {self.settings.api_port}")
            time.sleep(0.02)

    def _write_runtime_file(self) -> None:
        settings = self.settings
        info = {
            "pid": os.getpid(),
            "profile": settings.profile,
            "api_url": settings.resolved_api_url(),
            "redis_url": settings.redis_url,
            "redis_pid": self.redis_server.pid if self.redis_server else None,
            "sql_url": settings.resolved_sql_url(),
            "data_dir": str(settings.data_dir.resolve()),
            "started_at": time.time(),
        }
        tmp = settings.runtime_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(settings.runtime_file)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Runtime(Settings()).start().serve_forever()


if __name__ == "__main__":
    main()

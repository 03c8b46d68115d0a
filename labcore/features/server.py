"""Feast's own feature server (``feast serve``'s FastAPI app), embedded in the runtime on 6566.

The same server the compose profile runs as its own service (``services/feature_store``); here it runs
in a thread so walkthrough step 7 works against the embedded stack too.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from labcore.errors import BackendUnavailable

if TYPE_CHECKING:
    import feast
    from fastapi import FastAPI




def feature_server_app(feast_store: feast.FeatureStore, *, registry_ttl_sec: int = 0) -> FastAPI:
    """Feast's FastAPI feature server for ``feast_store`` (``feast.feature_server.get_app``).

    Its routes are Feast's own — ``POST /get-online-features``, ``POST /push``, ``GET /health``, ...
    It needs its lifespan (it initializes the store), so serve it with ``lifespan="on"``.

    Give it a store of its own (``labcore.features.repo.open_serving_store``), not the one that
    materializes and pushes. ``registry_ttl_sec=0`` (Feast's default is 5) stops its timer from
    re-reading the registry file, which materialize rewrites in place: a re-read mid-write serves
    "feature service does not exist" errors. Restart the server to pick up new definitions.
    """
    from feast.feature_server import get_app

    return get_app(feast_store, registry_ttl_sec=registry_ttl_sec)


class FeatureServerThread:
    """Feast's feature server in a uvicorn thread of this process (the embedded runtime, tests).

    ``feast_store`` should be a serving store (``open_serving_store``); see ``feature_server_app``.
    ``sock``: a socket already bound to ``host:port`` (``labcore.engines.process.bind_port``) to serve on.
    """

    def __init__(
        self,
        feast_store: feast.FeatureStore,
        host: str = "127.0.0.1",
        port: int = 6566,
        *,
        sock: socket.socket | None = None,
        **app_kwargs: Any,
    ) -> None:
        import uvicorn

        self.host = host
        self.port = sock.getsockname()[1] if sock else port
        config = uvicorn.Config(
            feature_server_app(feast_store, **app_kwargs),
            host=host,
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server: uvicorn.Server = uvicorn.Server(config)
        run_args = {"sockets": [sock]} if sock else {}
        self.thread = threading.Thread(target=self.server.run, kwargs=run_args, name="feature-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> FeatureServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.stop()
                raise BackendUnavailable("features", f"the feature server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)

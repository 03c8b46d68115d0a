"""The embedded runtime: the whole stack in one process, no Docker.

``feedlab up`` starts ``python -m labcore.lab.runtime`` in the background. The runtime

1. starts a real ``redis-server`` child (unless ``FEEDLAB_REDIS_URL`` points at one) and a real S3
   server, SeaweedFS's ``weed mini`` (unless ``FEEDLAB_S3_ENDPOINT`` points at one), both on loopback
   with their data under the data dir; a SIGKILLed runtime's children are stopped by the next ``up``;
2. builds the stack and opens the files only one process may own: the SQLite database, the Qdrant
   Edge shard, the DuckDB impressions table and Feast's online store;
3. materializes features once (SQL → parquet → online store) so a restarted stack serves at once;
4. serves the API (8000), the ranking service (8001) and Feast's feature server (6566); the feed itself
   reads Feast and calls the ranking models in this process (``feature_read``, ``ranking_read``), so
   its hot path has no HTTP hop, while the servers answer everything outside it;
5. runs the workers as threads: outbox relay, fan-out, embedding, interest vectors, feature
   freshness, the impressions loader and a periodic feature batch;
6. writes its endpoints to ``.feedlab/runtime.json`` for ``labcore.connect()`` and the CLI.

SIGTERM (``feedlab down``) stops everything in reverse order. A SIGKILL loses nothing that was
acknowledged: SQL committed it, Redis keeps an append-only file, and unacked events are replayed.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import uvicorn

from labcore.bootstrap import Stack, build_stack, build_workers
from labcore.engines.process import bind_port, free_port
from labcore.engines.redis import EmbeddedRedis
from labcore.engines.seaweedfs import SeaweedFS
from labcore.errors import InvalidInput, LabError, NotFound
from labcore.features.batch import materialize
from labcore.features.history import FeatureHistory
from labcore.features.repo import offline_data_dir, open_serving_store, open_store
from labcore.features.server import FeatureServerThread
from labcore.features.writer import FeatureWriter
from labcore.feed.pipeline import FeedPipeline
from labcore.lab.faults import Gate
from labcore.observability.tracing import setup_tracing
from labcore.ranking.in_process import InProcessRanker
from labcore.ranking.scorer import Scorer
from labcore.settings import SERVED_PORTS, Settings
from labcore.workers.loop import ConsumerLoop
from labcore.write.outbox import OutboxRelay
from labcore.write.posts import WritePath

log = logging.getLogger("labcore.lab.runtime")


class Runtime:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.redis_server: EmbeddedRedis | None = None
        self.s3_server: SeaweedFS | None = None
        self.stack: Stack | None = None
        self.stop_event = threading.Event()  # the whole runtime
        self.threads: dict[str, threading.Thread] = {}
        self.thread_stops: dict[str, threading.Event] = {}  # one per worker, so one can be stopped
        self.targets: dict[str, Callable[[threading.Event], None]] = {}
        self.gates: dict[str, Gate] = {}
        self.servers: dict[str, uvicorn.Server] = {}
        self.feature_server: FeatureServerThread | None = None
        self.pipeline: FeedPipeline | None = None
        self.reports: dict[str, Callable[[], dict[str, Any]]] = {}
        # Ports asked for as 0, bound at start and held until their server takes them over
        self.held_sockets: dict[str, socket.socket] = {}
        self._in_process_ranker: InProcessRanker | None = None  # settings.ranking_read "in-process"
        # The feed's in-process Feast reader and ranker, closed with their servers
        self._feast_gate: Gate | None = None
        self._ranking_gate: Gate | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Runtime:
        # The ranking model(s) first: an unknown version stops `feedlab up` before anything runs
        # (no redis-server child left behind to clean up).
        try:
            scorer = Scorer.from_settings(self.settings)
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
        self.settings = self._resolve_ports(self.settings)
        settings = self.settings
        # One process, one tracer provider: every service's spans land in the same buffer, so a
        # post's trace is whole here (in compose, Jaeger joins the containers' spans).
        setup_tracing(settings, "feedlab")
        stack = self.stack = build_stack(settings)
        stack.store.create_schema()
        # Open the process-owned stores now (failing early and loudly), behind gates the learner
        # can close to watch the feed fall back (labcore.lab.faults).
        stack.media.health()  # the bucket exists (created if missing) before the first post
        for name, component in (("vectors", stack.vectors), ("impressions", stack.impressions)):
            gate = self.gates[name] = Gate("vectors" if name == "vectors" else "olap", component)
            stack.__dict__[name] = gate

        # Load the model before serving: a post's features must be fresh within seconds of the
        # first write, not after a cold model load (and a broken model fails `feedlab up` loudly).
        stack.embedder.load()
        writer_store = open_store(settings, redis_url=settings.redis_url)
        # Every fresh write also lands in the offline history: training rows are joined point-in-time.
        writer = FeatureWriter(writer_store, stack.feature_cache, history=FeatureHistory(offline_data_dir(settings)))
        report = materialize(
            settings, stack.store.engine, writer_store, stack.feature_cache, embeddings_for=stack.vectors.vectors
        )
        log.info("features materialized: %s", report)
        self.feature_server = FeatureServerThread(
            open_serving_store(settings, redis_url=settings.redis_url), settings.host, settings.feature_port,
            sock=self.held_sockets.pop("feature_port", None),
        ).start()
        # The feed reads Feast in-process (settings.feature_read): opened now, after the writer applied
        # the definitions, behind a gate that "stop feature-server" closes along with the server.
        self._feast_gate = Gate("features", stack.features)
        stack.__dict__["features"] = self._feast_gate

        relay = self._start_workers(stack, writer)
        from services.api.app import (
            create_app,  # the API and ranking are deployables on labcore
        )
        from services.ranking.app import create_app as create_ranking_app

        writes = WritePath(stack, on_commit=relay.notify)
        # One scorer, served on the ranking port and, unless ranking_read says "server", called by the
        # feed in-process (no HTTP + JSON hop), behind a gate that "stop ranking" closes with the service.
        self._ranking_app = create_ranking_app(scorer=scorer)
        if settings.resolved_ranking_read() == "in-process":
            self._in_process_ranker = InProcessRanker(scorer, seed=settings.seed)
            self._ranking_gate = Gate("ranking", self._in_process_ranker)
            stack.__dict__["ranker"] = self._ranking_gate
        self._serve("ranking", self._ranking_app, settings.ranking_port, self.held_sockets.pop("ranking_port", None))
        self.pipeline = FeedPipeline(stack)
        api = create_app(stack, writes, self.reports, self.pipeline, control=self)
        self._serve("api", api, settings.api_port, self.held_sockets.pop("api_port", None))
        self._write_runtime_file()
        # Everything built so far lives as long as the process: move it out of the collector's
        # sight, or full collections over ~650k objects stall requests for ~400 ms (bench/).
        gc.freeze()
        # What is made later and lives on (caches, pooled connections, the workers' state) still gets
        # a full pass every 10th gen-1 collection: ~30 ms each, 1 request in 50 on the small world
        # (bench/profile_feed.py), which is the feed's p99. Every 100th keeps them out of it.
        gc.set_threshold(gc.get_threshold()[0], gc.get_threshold()[1], 100)
        log.info("feed lab runtime up: api %s", settings.resolved_api_url())
        return self

    def _resolve_ports(self, settings: Settings) -> Settings:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        updates: dict[str, Any] = {}
        if not settings.redis_url:
            self.redis_server = EmbeddedRedis(
                settings.data_dir / "redis", binary=settings.redis_server_binary, host=settings.host
            ).start()
            updates["redis_url"] = self.redis_server.url
        if "s3_endpoint" not in settings.model_fields_set:
            # The object store: a real S3 server beside us, its data under the data dir, loopback only.
            self.s3_server = SeaweedFS(
                settings.data_dir / "seaweedfs", port=free_port(settings.host),
                access_key=settings.s3_access_key, secret_key=settings.s3_secret_key,
            ).start()  # fmt: skip
            updates["s3_endpoint"] = self.s3_server.endpoint
        for field in SERVED_PORTS:
            if getattr(settings, field) == 0:
                sock = self.held_sockets[field] = bind_port(settings.host)
                updates[field] = sock.getsockname()[1]
        return settings.model_copy(update=updates)

    def _start_workers(self, stack: Stack, writer: FeatureWriter) -> OutboxRelay:
        """Start every worker thread; returns the relay, which the write path wakes after commits."""
        settings = stack.settings
        relay = OutboxRelay(stack.store, stack.events, poll_seconds=settings.outbox_poll_seconds)
        loops = build_workers(stack, writer=writer)
        self._spawn("outbox-relay", relay.run)
        self.reports["outbox-relay"] = lambda: {"published": relay.published, "last_error": relay.last_error}
        self.reports["embedder"] = stack.embedder.stats  # the model the embedding and interest workers share
        for name, loop in loops.items():
            self._spawn(name, loop.run)
            self.reports[name] = _loop_report(loop)
        self._spawn("feature-batch", lambda stop: self._feature_batches(stack, writer, stop))
        return relay

    def _feature_batches(self, stack: Stack, writer: FeatureWriter, stop: threading.Event) -> None:
        """Re-materialize periodically: counters no event refreshes (follower counts) catch up."""
        while not stop.wait(self.settings.feature_batch_seconds):
            try:
                materialize(
                    self.settings, stack.store.engine, writer.store, stack.feature_cache,
                    embeddings_for=stack.vectors.vectors,
                )  # fmt: skip
            except LabError as exc:
                log.warning("feature batch failed: %s", exc)

    # --- services a learner can stop and start from a notebook cell ---------------------------------
    def services(self) -> dict[str, str]:
        """Every stoppable service and whether it runs."""
        state = {name: "stopped" if gate.is_closed else "running" for name, gate in self.gates.items()}
        if self.redis_server is not None:
            state["redis"] = "running" if self.redis_server.pid else "stopped"
        state["ranking"] = "running" if self.threads["ranking"].is_alive() else "stopped"
        alive = self.feature_server is not None and self.feature_server.thread.is_alive()
        state["feature-server"] = "running" if alive else "stopped"
        for name in self.targets:
            state[name] = "running" if self.threads[name].is_alive() else "stopped"
        return state

    def stop_service(self, name: str) -> None:
        self._check_service(name)
        if name in self.gates:
            self.gates[name].close_gate()
        elif name == "redis":
            self.redis_server.stop()  # type: ignore[union-attr]
        elif name == "ranking":
            if self._ranking_gate is not None:
                self._ranking_gate.close_gate()
            self.servers["ranking"].should_exit = True
            self.threads["ranking"].join(10)
        elif name == "feature-server":
            # Feast is down for everyone: its HTTP server and the feed's in-process reader.
            self.feature_server.stop()  # type: ignore[union-attr]
            self._feast_gate.close_gate()  # type: ignore[union-attr]
        else:
            self.thread_stops[name].set()
            self.threads[name].join(10)

    def start_service(self, name: str) -> None:
        self._check_service(name)
        if self.services()[name] == "running":
            return
        settings = self.settings
        if name in self.gates:
            self.gates[name].open_gate()
        elif name == "redis":
            self.redis_server.start()  # type: ignore[union-attr] - same port, same data
        elif name == "ranking":
            self._serve("ranking", self._ranking_app, settings.ranking_port)
            if self._ranking_gate is not None:
                self._ranking_gate.open_gate()
        elif name == "feature-server":
            self.feature_server = FeatureServerThread(
                open_serving_store(settings, redis_url=settings.redis_url), settings.host, settings.feature_port
            ).start()
            self._feast_gate.open_gate()  # type: ignore[union-attr]
        else:
            self._spawn(name, self.targets[name])

    # --- serving knobs a notebook may turn (the learned-ranking lesson) -------------------------------
    SERVING_KNOBS = ("ranking_model", "ranking_treatment", "ranking_treatment_share", "exploration_share")

    def serving(self) -> dict[str, Any]:
        """The ranking model(s), the A/B share and the exploration share in force."""
        return {knob: getattr(self.settings, knob) for knob in self.SERVING_KNOBS}

    def configure_serving(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change serving knobs without a restart: what ``FEEDLAB_RANKING_MODEL=... feedlab up`` would
        do, for a notebook. The new model versions are loaded *before* anything is swapped, so an
        unknown version is refused (``InvalidInput``) and the running service keeps serving."""
        from services.ranking.app import create_app as create_ranking_app

        unknown = set(changes) - set(self.SERVING_KNOBS)
        if unknown:
            raise InvalidInput(f"not a serving knob: {', '.join(sorted(unknown))}")
        try:
            settings = Settings.model_validate(self.settings.model_dump() | changes)
            scorer = Scorer.from_settings(settings)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            raise InvalidInput(str(exc)) from exc
        ranking_changed = any(
            getattr(settings, knob) != getattr(self.settings, knob) for knob in self.SERVING_KNOBS[:3]
        )
        self.settings = settings
        if self.pipeline is not None:
            self.pipeline.settings = settings  # read per request: the next feed explores at the new share
        if ranking_changed:
            running = self.services()["ranking"] == "running"
            if running:
                self.stop_service("ranking")
            self._ranking_app = create_ranking_app(scorer=scorer)
            if self._in_process_ranker is not None:
                self._in_process_ranker.scorer = scorer
            if running:
                self.start_service("ranking")
        return self.serving()

    def _check_service(self, name: str) -> None:
        if name not in self.services() or name == "api":
            raise NotFound(f"no service {name!r}; services: {', '.join(sorted(self.services()))}")

    def stop(self) -> None:
        self.stop_event.set()
        for event in self.thread_stops.values():
            event.set()
        for gate in (*self.gates.values(), self._feast_gate, self._ranking_gate):
            if gate is not None:
                gate.open_gate()  # so the stores close cleanly: a closed gate refuses close() too
        for server in self.servers.values():
            server.should_exit = True
        if self.feature_server is not None:
            self.feature_server.stop()
        for sock in self.held_sockets.values():  # a start that failed before serving them
            sock.close()
        for thread in self.threads.values():
            thread.join(timeout=10)
        if self.stack is not None:
            self.stack.close()
        if self.redis_server is not None:
            self.redis_server.stop()
        if self.s3_server is not None:
            self.s3_server.stop()
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
        """Run ``target`` in a thread; workers get a stop event of their own (see ``stop_service``)."""
        args: tuple[threading.Event, ...] = ()
        if uses_stop_event:
            self.targets[name] = target
            stop = self.thread_stops[name] = threading.Event()
            if self.stop_event.is_set():
                stop.set()
            args = (stop,)
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self.threads[name] = thread

    def _serve(self, name: str, app: Any, port: int, sock: socket.socket | None = None, timeout: float = 30.0) -> None:
        """Serve ``app`` on ``port``, or on ``sock`` when the port was bound at start (asked for as 0)."""
        config = uvicorn.Config(app, host=self.settings.host, port=port, log_level="warning", lifespan="off")
        server = self.servers[name] = uvicorn.Server(config)
        run = functools.partial(server.run, sockets=[sock]) if sock else server.run
        self._spawn(name, run, uses_stop_event=False)
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self.threads[name].is_alive():
                self.stop()
                raise RuntimeError(f"{name} did not start on port {port}")
            time.sleep(0.02)

    def _write_runtime_file(self) -> None:
        settings = self.settings
        info = {
            "pid": os.getpid(),
            "profile": settings.profile,
            "api_url": settings.resolved_api_url(),
            "ranking_url": settings.resolved_ranking_url(),
            "feature_server_url": settings.resolved_feature_server_url(),
            "redis_url": settings.redis_url,
            "redis_pid": self.redis_server.pid if self.redis_server else None,
            "s3_endpoint": settings.s3_endpoint,
            "s3_pid": self.s3_server.pid if self.s3_server else None,
            "sql_url": settings.resolved_sql_url(),
            "data_dir": str(settings.data_dir.resolve()),
            "started_at": time.time(),
        }
        tmp = settings.runtime_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(settings.runtime_file)


def _loop_report(loop: ConsumerLoop) -> Callable[[], dict[str, Any]]:
    def report() -> dict[str, Any]:
        counters = {k: v for k, v in vars(loop.handle).items() if isinstance(v, int)}
        return counters | asdict(loop.stats)

    return report


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for chatty in ("feast", "httpx", "httpcore"):  # per-request INFO lines drown the runtime's own
        logging.getLogger(chatty).setLevel(logging.WARNING)
    Runtime(Settings()).start().serve_forever()


if __name__ == "__main__":
    main()

"""All engines together: fetch, ``up`` in dependency order, ``down`` exactly what ``up`` started.

Ports default to the ones ``compose/docker-compose.yml`` publishes on the host (Kafka 9092, Pinot
broker 8099 and controller 9002, Jaeger 16686/4317/4318, S3 9000 — SeaweedFS standing in for MinIO —,
Prometheus 9090), so the compose profile's clients and the contract tests' ``test-compose`` settings
reach them unchanged. ``up`` writes ``<run_dir>/engines.json`` (endpoints and pid files); ``down``
stops the processes those pid files name, after checking each pid still runs the recorded command.

MariaDB and Redis are not started here: they are the machine's servers (``.ci/run`` starts them);
``up`` checks they answer and says how to start them if they do not.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from labcore.domain import TOPIC_ENGAGEMENTS, TOPIC_IMPRESSIONS, TOPIC_NEW_POSTS
from labcore.engines.process import recorded_pid, stop_orphan
from labcore.settings import Settings

ORDER = ("kafka", "pinot", "jaeger", "seaweedfs", "prometheus")
TOPICS = (TOPIC_NEW_POSTS, TOPIC_ENGAGEMENTS, TOPIC_IMPRESSIONS)
STATE_FILE = "engines.json"
MACHINE_SERVERS = {
    "mariadb": (3306, "sudo apt-get install mariadb-server && sudo service mariadb start (CI: .ci/run does it)"),
    "redis": (6379, "sudo apt-get install redis-server && sudo service redis-server start (CI: .ci/run does it)"),
}


class Engine(Protocol):
    name: str

    def is_fetched(self) -> bool: ...
    def fetch(self) -> Any: ...
    def start(self, timeout: float = ...) -> Any: ...
    def stop(self) -> None: ...
    def endpoints(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Ports:
    """Host ports of one engines stack; 0 = a free one (tests run stacks side by side)."""

    kafka: int = 9092
    pinot_controller: int = 9002
    pinot_broker: int = 8099
    jaeger_query: int = 16686
    jaeger_otlp_grpc: int = 4317
    jaeger_otlp_http: int = 4318
    s3: int = 9000
    prometheus: int = 9090

    @classmethod
    def free(cls) -> Ports:
        return cls(**{name: 0 for name in cls.__dataclass_fields__})


def make_engine(name: str, settings: Settings, run_dir: Path, ports: Ports, kafka_bootstrap: str | None = None) -> Engine:
    """One engine, configured from settings; imports its module only when asked for."""
    cache = settings.resolved_engines_cache_dir()
    if name == "kafka":
        from labcore.engines.kafka import Kafka

        return Kafka(cache, run_dir, port=ports.kafka, partitions=settings.event_partitions,
                     java=settings.engines_java, mvn=settings.engines_maven)  # fmt: skip
    if name == "pinot":
        from labcore.engines.pinot import Pinot

        return Pinot(cache, run_dir, kafka_bootstrap=kafka_bootstrap or f"127.0.0.1:{ports.kafka}",
                     controller_port=ports.pinot_controller, broker_port=ports.pinot_broker,
                     java=settings.engines_java, mvn=settings.engines_maven)  # fmt: skip
    if name == "jaeger":
        from labcore.engines.jaeger import Jaeger

        return Jaeger(cache, run_dir, query_port=ports.jaeger_query, otlp_grpc_port=ports.jaeger_otlp_grpc,
                      otlp_http_port=ports.jaeger_otlp_http, go=settings.engines_go)  # fmt: skip
    if name == "seaweedfs":
        from labcore.engines.seaweedfs import SeaweedFS

        return SeaweedFS(run_dir, port=ports.s3, access_key=settings.s3_access_key,
                         secret_key=settings.s3_secret_key, binary=settings.weed_binary)  # fmt: skip
    if name == "prometheus":
        from labcore.engines.prometheus import Prometheus

        return Prometheus(run_dir, port=ports.prometheus)
    raise ValueError(f"unknown engine {name!r}; engines: {', '.join(ORDER)}")


def ordered(names: Iterable[str] | None) -> list[str]:
    chosen = set(names or ORDER)
    unknown = chosen - set(ORDER)
    if unknown:
        raise ValueError(f"unknown engine(s) {sorted(unknown)}; engines: {', '.join(ORDER)}")
    return [name for name in ORDER if name in chosen]


def fetch(settings: Settings, names: Sequence[str] | None = None, say: Callable[[str], None] = print) -> dict[str, float]:
    """Download/build every chosen engine into the cache; seconds each took."""
    took: dict[str, float] = {}
    run_dir = settings.resolved_engines_run_dir()
    for name in ordered(names):
        engine = make_engine(name, settings, run_dir, Ports())
        started = time.monotonic()
        warm = engine.is_fetched()
        engine.fetch()
        took[name] = time.monotonic() - started
        say(f"{name:<11} {'cached' if warm else 'fetched'} in {took[name]:.1f} s")
    return took


def machine_servers() -> dict[str, str | None]:
    """MariaDB and Redis on their usual ports: None when reachable, else how to start them."""
    answers: dict[str, str | None] = {}
    for name, (port, how) in MACHINE_SERVERS.items():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            answers[name] = None
        except OSError:
            answers[name] = how
    return answers


def up(
    settings: Settings,
    names: Sequence[str] | None = None,
    ports: Ports = Ports(),
    say: Callable[[str], None] = print,
) -> dict[str, dict[str, str]]:
    """Start the chosen engines in dependency order; write the state file; return the endpoints."""
    run_dir = settings.resolved_engines_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    down(settings, say=lambda _: None)  # whatever a previous up left running
    chosen = ordered(names)
    state: dict[str, Any] = {"engines": {}}
    started: list[Engine] = []
    kafka_bootstrap = f"127.0.0.1:{ports.kafka}"
    try:
        for name in chosen:
            engine = make_engine(name, settings, run_dir, ports, kafka_bootstrap)
            t0 = time.monotonic()
            if name == "pinot" and "kafka" not in chosen:
                say(f"pinot consumes Kafka at {kafka_bootstrap}: start it first (up kafka)")
            engine.start()
            started.append(engine)
            if name == "kafka":
                engine.create_topics(TOPICS)  # type: ignore[attr-defined]
                kafka_bootstrap = engine.bootstrap  # type: ignore[attr-defined]
            state["engines"][name] = {
                "endpoints": engine.endpoints(),
                "pid_files": [str(p) for p in _pid_files(engine)],  # start order
                "start_seconds": round(time.monotonic() - t0, 1),
            }
            _write_state(run_dir, state)
            say(f"{name:<11} up in {time.monotonic() - t0:5.1f} s  " + "  ".join(f"{k}={v}" for k, v in engine.endpoints().items()))
    except BaseException:
        for engine in reversed(started):
            engine.stop()
        (run_dir / STATE_FILE).unlink(missing_ok=True)
        raise
    for name, how in machine_servers().items():
        if how:
            say(f"{name:<11} NOT reachable on 127.0.0.1: {how}")
    return {name: entry["endpoints"] for name, entry in state["engines"].items()}


def _pid_files(engine: Engine) -> list[Path]:
    children = getattr(engine, "_children", None) or [getattr(engine, "_child", None)]
    return [child.pid_path for child in children if child is not None]


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    path = run_dir / STATE_FILE
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2))
    partial.replace(path)


def read_state(settings: Settings) -> dict[str, Any]:
    path = settings.resolved_engines_run_dir() / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"engines": {}}


def down(settings: Settings, say: Callable[[str], None] = print) -> list[str]:
    """Stop what ``up`` started (newest first), and only that; return the stopped engines' names."""
    state = read_state(settings)
    stopped = []
    for name in reversed(list(state["engines"])):
        pid_files = state["engines"][name]["pid_files"]
        if any([stop_orphan(Path(p), grace=30) for p in reversed(pid_files)]):
            stopped.append(name)
            say(f"{name:<11} stopped")
    (settings.resolved_engines_run_dir() / STATE_FILE).unlink(missing_ok=True)
    return stopped


def status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each engine ``up`` started: running (all its processes verified alive) and its endpoints."""
    state = read_state(settings)
    return {
        name: {
            "running": all(recorded_pid(Path(p)) is not None for p in entry["pid_files"]),
            "endpoints": entry["endpoints"],
        }
        for name, entry in state["engines"].items()
    }

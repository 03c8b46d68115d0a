"""The engines our compose services need, on loopback, for the wired-stack tests.

Each engine is private to this package's session (its own ports and data), so the Kafka-semantics
tests may stop and restart the broker without disturbing any other suite. With
``FEEDLAB_REQUIRE_SERVERS=1`` (``make test``) an engine that cannot start fails the tests; without
it they are skipped, naming the engine.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from labcore.engines.process import free_port, port_open
from labcore.settings import Settings
from labcore.widgets.write_path import wait_until
from tests.conftest import MYSQL_URL, REQUIRE_SERVERS
from tests.engines.compose_stack import ComposeStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``breaks_stack`` (a SIGKILLed worker, a restarted broker) run last, so every
    other test meets the wired stack as ``up`` left it, whatever the files are called."""
    items.sort(key=lambda item: item.get_closest_marker("breaks_stack") is not None)


def unavailable(what: str, exc: BaseException | str) -> None:
    message = f"{what} could not start: {exc}"
    if REQUIRE_SERVERS:
        pytest.fail(message + " (FEEDLAB_REQUIRE_SERVERS=1: the wired-stack tests must run)")
    pytest.skip(message)


@dataclass
class Engines:
    """What stands in for each engine service of the compose file: ``{service: {container port: port}}``."""

    run_dir: Path
    ports: dict[str, dict[int, int]] = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)
    handles: dict[str, Any] = field(default_factory=dict)
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def child(self, name: str, argv: list[str], port: int, env: dict[str, str] | None = None) -> None:
        log = open(self.run_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)
        self.children.append(proc)
        try:
            wait_until(port_open(port), timeout=30, interval=0.1, what=f"{name} listening on {port}")
        except TimeoutError:
            unavailable(name, (self.run_dir / f"{name}.log").read_text()[-2000:])


def kafka_topics_image(root: Path, cache: Path) -> Path:
    """The Kafka image's ``/opt/kafka``: ``bin/kafka-topics.sh`` running Kafka's own TopicCommand
    (``org.apache.kafka:kafka-tools`` of the engine's version, which the broker's classpath lacks)."""
    from labcore.engines import kafka
    from labcore.engines.maven import Artifact, fetch_classpath

    tools = Artifact("org.apache.kafka", "kafka-tools", kafka.VERSION)
    libs = fetch_classpath([tools, *kafka.ARTIFACTS[1:]], cache / f"kafka-tools-{kafka.VERSION}", cache, name="kafka-tools")
    script = root / "bin" / "kafka-topics.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!/bin/sh\nexec java -cp '{libs}/*' org.apache.kafka.tools.TopicCommand \"$@\"\n")
    script.chmod(0o755)
    return root


def started(engines: Engines, name: str, engine: Any) -> Any:
    """Start one engine of ``labcore.engines``; a failure is that engine's, reported by name."""
    try:
        engine.start()
    except Exception as exc:  # noqa: BLE001 - whatever stops it, the test must say which engine
        unavailable(name, exc)
    engines.handles[name] = engine
    return engine


def start_engines(engines: Engines, settings: Settings) -> None:
    from labcore.engines.jaeger import Jaeger
    from labcore.engines.kafka import Kafka
    from labcore.engines.pinot import Pinot
    from labcore.engines.redis import EmbeddedRedis
    from labcore.engines.seaweedfs import SeaweedFS

    cache, run = settings.resolved_engines_cache_dir(), engines.run_dir
    mariadb = sa.engine.make_url(MYSQL_URL)
    engines.ports["tidb"] = {4000: mariadb.port or 3306}
    redis = started(engines, "redis", EmbeddedRedis(run / "redis"))
    engines.ports["redis"] = {6379: int(redis.url.rsplit(":", 1)[1].split("/")[0])}
    # compose's MinIO keys are its defaults; SeaweedFS checks the same signatures
    s3 = started(engines, "seaweedfs", SeaweedFS(run, port=0, binary=settings.weed_binary))
    engines.ports["seaweedfs"] = {9000: s3.port}
    port = free_port()
    engines.child("qdrant", [sys.executable, "-m", "tests.engines.qdrant_standin", "--port", str(port)], port)
    engines.ports["qdrant"] = {6333: port}
    kafka = started(engines, "kafka", Kafka(cache, run, port=free_port()))
    engines.ports["kafka"] = {9092: kafka.port}
    engines.images["/opt/kafka"] = kafka_topics_image(run / "kafka-image", cache)
    jaeger = started(engines, "jaeger", Jaeger(cache, run, query_port=0, otlp_grpc_port=0, otlp_http_port=0))
    engines.ports["jaeger"] = {16686: jaeger.query_port, 4318: jaeger.otlp_http_port, 4317: jaeger.otlp_grpc_port}
    # Pinot starts later (it needs the topics kafka-init creates); its ports are chosen now.
    # compose's controller listens on 9000 inside its container (published on the host as 9002).
    pinot = Pinot(cache, run, kafka_bootstrap=kafka.bootstrap, controller_port=free_port(), broker_port=free_port())
    engines.handles["pinot-unstarted"] = pinot
    engines.ports["pinot-controller"] = {9000: pinot.controller_port}
    engines.ports["pinot-broker"] = {8099: pinot.broker_port}


@pytest.fixture(scope="session")
def wired_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    run_dir = tmp_path_factory.mktemp("wired-engines")
    engines = Engines(run_dir)
    try:
        start_engines(engines, Settings())
        yield engines
    finally:
        for name, handle in engines.handles.items():
            if name != "pinot-unstarted":
                handle.stop()
        for proc in engines.children:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def wired_stack(wired_engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    """Every service and init job of ours from the compose file, started in its depends_on order."""
    run_id = uuid.uuid4().hex[:8]
    stack = ComposeStack(
        tmp_path_factory.mktemp("wired-stack"), wired_engines.ports, run_id,
        variables={"WORLD": "tiny"}, images=wired_engines.images,
    )  # fmt: skip
    from labcore.engines.prometheus import Prometheus

    # Prometheus scrapes compose/monitoring/prometheus.yml's targets, each mapped like any address
    targets = {f"{service}:{port}": loopback for (service, port), loopback in stack.book.ports.items()}
    prometheus = Prometheus(wired_engines.run_dir, port=0, targets=targets)
    try:
        started(wired_engines, "prometheus", prometheus)
        stack.prometheus_url = prometheus.url
        stack.up(("kafka-init",))  # the topics, which Pinot's real-time table consumes
        started(wired_engines, "pinot", wired_engines.handles.pop("pinot-unstarted"))
        stack.up()
        yield stack
    finally:
        stack.down()
        admin = sa.create_engine(MYSQL_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS feed_{run_id}"))
        admin.dispose()

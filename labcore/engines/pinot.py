"""Apache Pinot — ZooKeeper, controller, broker, server — from Maven Central, consuming our Kafka.

Which version: the newest whose whole runtime is served by Maven Central. Pinot 1.x publishes only
some of its modules there (no ``pinot-tools``, ``pinot-server`` or ``pinot-kafka-3.0`` for any 1.x
release), so 0.11.0 it is: ``pinot-tools`` 0.11.0 resolves with its dependencies once the Confluent
artifacts (not on Central) are excluded, and ``pinot-orc`` (not on Central either) plus the S3 and
Kinesis plugins (unused) are left out. Its one Kafka plugin is ``kafka20`` (kafka-clients 2.8.1, which
a Kafka 4 broker still serves), the consumer factory ``compose/pinot/`` names.

Four JVMs, each a ``PinotAdministrator`` command, every port on 127.0.0.1. Like the compose stack,
Pinot keeps no state across restarts: its folder is wiped at start and the real-time table re-reads
the ``impressions`` topic from the earliest offset. The schema and table are ``compose/pinot/``'s, the
table pointed at our Kafka — what compose's ``pinot-init`` job does.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx

from labcore.engines.maven import Artifact, fetch_classpath, is_fetched
from labcore.engines.process import ChildProcess, free_port, http_ok, port_open
from labcore.errors import BackendUnavailable

VERSION = "0.11.0"
ARTIFACTS = (
    Artifact(
        "org.apache.pinot",
        "pinot-tools",
        VERSION,
        exclusions=(
            "io.confluent:*",  # not on Maven Central
            "org.apache.pinot:pinot-orc",  # not on Maven Central at 0.11.0
            "org.apache.pinot:pinot-kinesis",
            "org.apache.pinot:pinot-s3",
        ),
    ),
)
# Two slf4j bindings and log4j 1 come along; log4j2's binding (log4j-slf4j-impl) stays.
DROP = ("slf4j-log4j12-", "log4j-1.2.17")
MAIN = "org.apache.pinot.tools.admin.PinotAdministrator"
JVM_FLAGS = (
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dpinot.admin.system.exit=false",
    "-Djava.awt.headless=true",
    "-XX:+UseG1GC",
)
COMPOSE_PINOT = Path(__file__).resolve().parents[2] / "compose" / "pinot"
CLUSTER = "PinotCluster"


def home(cache_dir: Path) -> Path:
    return cache_dir / f"pinot-{VERSION}"


def table_config(kafka_bootstrap: str, folder: Path = COMPOSE_PINOT) -> dict:
    """compose/pinot's real-time table, consuming ``kafka_bootstrap``, in Pinot 0.11's dialect."""
    table = json.loads((folder / "impressions_realtime_table.json").read_text())
    segments = table["segmentsConfig"]
    # Pinot 0.11 still wants the real-time replica count under its old name (1.x reads "replication").
    segments.setdefault("replicasPerPartition", segments.get("replication", "1"))
    for stream in table["ingestionConfig"]["streamIngestionConfig"]["streamConfigMaps"]:
        stream["stream.kafka.broker.list"] = kafka_bootstrap
    return table


class Pinot:
    """ZooKeeper + controller + broker + server on 127.0.0.1, the impressions table on our Kafka."""

    name = "pinot"

    def __init__(
        self,
        cache_dir: Path,
        run_dir: Path,
        *,
        kafka_bootstrap: str,
        controller_port: int = 9002,
        broker_port: int = 8099,
        java: str = "java",
        mvn: str = "mvn",
        heap: str = "1g",
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.run_dir = Path(run_dir)
        self.kafka_bootstrap = kafka_bootstrap
        self.controller_port = controller_port or free_port()
        self.broker_port = broker_port or free_port()
        self.java = java
        self.mvn = mvn
        self.heap = heap
        self._children: list[ChildProcess] = []

    @property
    def controller_url(self) -> str:
        return f"http://127.0.0.1:{self.controller_port}"

    @property
    def broker_url(self) -> str:
        return f"http://127.0.0.1:{self.broker_port}"

    def endpoints(self) -> dict[str, str]:
        return {"broker": self.broker_url, "controller": self.controller_url}

    def is_fetched(self) -> bool:
        return is_fetched(home(self.cache_dir))

    def fetch(self) -> Path:
        return fetch_classpath(
            ARTIFACTS, home(self.cache_dir), self.cache_dir, name=self.name, mvn=self.mvn, drop=DROP
        )

    def _command(self, libs: Path, role: str, heap: str, *args: str) -> ChildProcess:
        folder = self.run_dir / "pinot"
        argv = [self.java, "-Xms256m", f"-Xmx{heap}", *JVM_FLAGS, "-cp", f"{libs}/*", MAIN, *args]
        return ChildProcess(f"pinot-{role}", argv, folder)

    def start(self, timeout: float = 240.0) -> Pinot:
        libs = self.fetch()
        folder = self.run_dir / "pinot"
        shutil.rmtree(folder, ignore_errors=True)  # no state across restarts, like compose's Pinot
        folder.mkdir(parents=True)
        deadline = time.monotonic() + timeout
        zk_port, server_admin = free_port(), free_port()
        zk = f"127.0.0.1:{zk_port}"
        roles = [
            ("zookeeper", "256m", ["StartZookeeper", "-zkPort", str(zk_port), "-dataDir", str(folder / "zk")],
             port_open(zk_port)),
            ("controller", self.heap,
             ["StartController", "-clusterName", CLUSTER, "-zkAddress", zk, "-controllerHost", "127.0.0.1",
              "-controllerPort", str(self.controller_port), "-dataDir", str(folder / "controller")],
             http_ok(f"{self.controller_url}/health")),
            ("broker", self.heap,
             ["StartBroker", "-clusterName", CLUSTER, "-zkAddress", zk, "-brokerHost", "127.0.0.1",
              "-brokerPort", str(self.broker_port)],
             http_ok(f"{self.broker_url}/health")),
            ("server", self.heap,
             ["StartServer", "-clusterName", CLUSTER, "-zkAddress", zk, "-serverHost", "127.0.0.1",
              "-serverPort", str(free_port()), "-serverAdminPort", str(server_admin),
              "-serverGrpcPort", str(free_port()), "-dataDir", str(folder / "server-data"),
              "-segmentDir", str(folder / "server-segments")],
             http_ok(f"http://127.0.0.1:{server_admin}/health")),
        ]  # fmt: skip
        try:
            for role, heap, args, ready in roles:
                child = self._command(libs, role, heap, *args)
                self._children.append(child)
                child.start(ready, max(1.0, deadline - time.monotonic()))
            self.create_table()
            self._wait_queryable(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def create_table(self) -> None:
        """compose/pinot's schema and real-time table (what compose's ``pinot-init`` job posts)."""
        schema = json.loads((COMPOSE_PINOT / "impressions_schema.json").read_text())
        table = table_config(self.kafka_bootstrap)
        with httpx.Client(base_url=self.controller_url, timeout=60) as http:
            try:
                http.post("/schemas", params={"override": "true"}, json=schema).raise_for_status()
                if table["tableName"] not in http.get("/tables").json().get("tables", []):
                    http.post("/tables", json=table).raise_for_status()
            except httpx.HTTPStatusError as exc:
                raise BackendUnavailable(self.name, f"creating the table: {exc.response.text}") from exc
            except httpx.HTTPError as exc:
                raise BackendUnavailable(self.name, f"creating the table: {exc}") from exc

    def _wait_queryable(self, deadline: float) -> None:
        """Until the broker answers a query on the table (its consuming segments are online)."""
        last = ""
        while time.monotonic() < deadline:
            try:
                response = httpx.post(
                    f"{self.broker_url}/query/sql", json={"sql": "SELECT COUNT(*) FROM impressions"}, timeout=5
                )
                body = response.json()
                if response.status_code == 200 and not body.get("exceptions"):
                    return
                last = str(body.get("exceptions") or response.status_code)
            except (httpx.HTTPError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise BackendUnavailable(self.name, f"the impressions table is not queryable: {last}")

    def stop(self) -> None:
        for child in reversed(self._children):  # server, broker, controller, then ZooKeeper
            child.stop()
        self._children = []

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self._children if child.pid]

"""Apache Pinot — ZooKeeper, controller, broker, server — from Maven Central, consuming our Kafka.

Which version: the newest whose whole runtime is served by Maven Central. Pinot 1.x publishes only
some of its modules there (no ``pinot-tools``, ``pinot-server`` or ``pinot-kafka-3.0`` for any 1.x
release), so 0.11.0 it is: ``pinot-tools`` 0.11.0 resolves with its dependencies once the Confluent
artifacts (not on Central) are excluded, and ``pinot-orc`` (not on Central either) plus the S3 and
Kinesis plugins (unused) are left out. Its one Kafka plugin is ``kafka20`` (kafka-clients 2.8.1, which
a Kafka 4 broker still serves), the consumer factory ``compose/pinot/`` names.

Four JVMs: ZooKeeper and three ``PinotAdministrator`` commands, each from a config file that binds its
listeners to 127.0.0.1 (``role_configs`` — all but the server's Netty query port, which Pinot cannot bind). Like the compose stack,
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
# ZooKeeper's own main (zookeeper 3.5.8 comes with pinot-tools): its config takes a bind address.
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
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
    # ZooKeeper: no AdminServer (an HTTP port on all interfaces) and no log4j 1 JMX beans (log4j2 here);
    # what Pinot's own StartZookeeper sets.
    "-Dzookeeper.admin.enableServer=false",
    "-Dzookeeper.jmx.log4j.disable=true",
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


def role_configs(
    folder: Path, zk: str, controller_port: int, broker_port: int, server_port: int, server_admin_port: int
) -> dict[str, dict[str, str]]:
    """Each process's config, every listener bound to 127.0.0.1 (issue #14) — keys of Pinot 0.11's source.

    The command-line flags (``-controllerPort``, ``-brokerPort``, ``-serverAdminPort``) set the legacy
    port keys (``controller.port``, ``pinot.broker.client.queryPort``, ``pinot.server.adminapi.port``),
    which ``ListenerConfigUtil`` always binds to 0.0.0.0; only the ``*.access.protocols.http.*`` listener
    keys take a host, so those are used instead and the legacy keys are left unset. ZooKeeper is started
    by its own main class, whose ``clientPortAddress`` Pinot's ``StartZookeeper`` cannot set. The server's
    gRPC query port (for streaming clients such as Presto's connector) is off: nothing of ours uses it.

    One listener stays on all interfaces: the server's Netty query port, which the broker queries.
    Pinot's ``QueryServer`` binds it with ``bind(port)`` and has no host key (0.11 nor since);
    ``pinot.server.netty.host`` only names the address the broker is told to connect to.
    """
    zk_port = zk.rsplit(":", 1)[1]
    return {
        "zookeeper": {
            "dataDir": str(folder / "zk"),
            "clientPort": zk_port,
            "clientPortAddress": "127.0.0.1",
            "tickTime": "2000",
            "maxClientCnxns": "0",
        },
        "controller": {
            "controller.zk.str": zk,
            "controller.helix.cluster.name": CLUSTER,
            "controller.host": "127.0.0.1",
            "controller.access.protocols": "http",
            "controller.access.protocols.http.host": "127.0.0.1",
            "controller.access.protocols.http.port": str(controller_port),
            "controller.vip.host": "127.0.0.1",
            "controller.vip.port": str(controller_port),
            "controller.data.dir": str(folder / "controller"),
            "controller.local.temp.dir": str(folder / "controller-tmp"),
            # what StartController's flags set besides the port (PinotConfigUtils.generateControllerConf)
            "cluster.tenant.isolation.enable": "true",
            "controller.retention.frequencyPeriod": "6h",
            "controller.offline.segment.interval.checker.frequencyPeriod": "1h",
            "controller.realtime.segment.validation.frequencyPeriod": "1h",
            "controller.broker.resource.validation.frequencyPeriod": "1h",
        },
        "broker": {
            "pinot.zk.server": zk,
            "pinot.cluster.name": CLUSTER,
            "pinot.broker.hostname": "127.0.0.1",
            "pinot.broker.client.access.protocols": "http",
            "pinot.broker.client.access.protocols.http.host": "127.0.0.1",
            "pinot.broker.client.access.protocols.http.port": str(broker_port),
        },
        "server": {
            "pinot.zk.server": zk,
            "pinot.cluster.name": CLUSTER,
            "pinot.server.netty.host": "127.0.0.1",
            "pinot.server.netty.port": str(server_port),
            "pinot.server.adminapi.access.protocols": "http",
            "pinot.server.adminapi.access.protocols.http.host": "127.0.0.1",
            "pinot.server.adminapi.access.protocols.http.port": str(server_admin_port),
            "pinot.server.grpc.enable": "false",
            "pinot.server.instance.dataDir": str(folder / "server-data"),
            "pinot.server.instance.segmentTarDir": str(folder / "server-segments"),
        },
    }


def write_config(path: Path, values: dict[str, str]) -> Path:
    """A Java properties file (what ``-configFileName`` and ZooKeeper read)."""
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


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
        self.server_netty_port = 0  # chosen at start
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

    def _command(self, libs: Path, role: str, heap: str, *args: str, main: str = MAIN) -> ChildProcess:
        folder = self.run_dir / "pinot"
        argv = [self.java, "-Xms256m", f"-Xmx{heap}", *JVM_FLAGS, "-cp", f"{libs}/*", main, *args]
        # cwd: Pinot's bundled log4j2 config also writes logs/ relative to it.
        return ChildProcess(f"pinot-{role}", argv, folder, cwd=folder)

    def start(self, timeout: float = 240.0) -> Pinot:
        libs = self.fetch()
        folder = self.run_dir / "pinot"
        shutil.rmtree(folder, ignore_errors=True)  # no state across restarts, like compose's Pinot
        folder.mkdir(parents=True)
        deadline = time.monotonic() + timeout
        zk_port, server_admin = free_port(), free_port()
        self.server_netty_port = free_port()
        zk = f"127.0.0.1:{zk_port}"
        configs = role_configs(folder, zk, self.controller_port, self.broker_port, self.server_netty_port, server_admin)
        roles = [
            ("zookeeper", "256m", [str(write_config(folder / "zoo.cfg", configs["zookeeper"]))], ZOOKEEPER_MAIN,
             port_open(zk_port)),
            ("controller", self.heap, ["StartController", "-configFileName",
                                       str(write_config(folder / "controller.conf", configs["controller"]))], MAIN,
             http_ok(f"{self.controller_url}/health")),
            ("broker", self.heap, ["StartBroker", "-configFileName",
                                   str(write_config(folder / "broker.conf", configs["broker"]))], MAIN,
             http_ok(f"{self.broker_url}/health")),
            ("server", self.heap, ["StartServer", "-configFileName",
                                   str(write_config(folder / "server.conf", configs["server"]))], MAIN,
             http_ok(f"http://127.0.0.1:{server_admin}/health")),
        ]  # fmt: skip
        try:
            for role, heap, args, main, ready in roles:
                child = self._command(libs, role, heap, *args, main=main)
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

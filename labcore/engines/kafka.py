"""Apache Kafka, one KRaft node (broker and controller in one JVM), from Maven Central.

The classpath is ``org.apache.kafka:kafka_2.13`` and its runtime dependencies plus a log4j2 binding
for slf4j (Kafka's own code logs through slf4j; without a binding its log would be empty). The data
folder is formatted once (``kafka.tools.StorageTool``) and kept, so a restarted broker keeps its
topics and committed offsets — the property the outbox-replay tests rely on.

The controller quorum is static (``controller.quorum.voters``), like the compose file's, so the
controller port is free to differ between runs. The heap stays at 1 GB: the log cleaner's dedupe
buffer does not fit a smaller one.
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from labcore.engines.maven import Artifact, fetch_classpath, is_fetched
from labcore.engines.process import ChildProcess, SingleProcessEngine, free_port, port_open
from labcore.errors import BackendUnavailable

VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"  # the log4j-core Kafka 4.1.1 depends on
ARTIFACTS = (
    Artifact("org.apache.kafka", "kafka_2.13", VERSION),
    Artifact("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
)

LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = warn
"""


def home(cache_dir: Path) -> Path:
    return cache_dir / f"kafka-{VERSION}"


class Kafka(SingleProcessEngine):
    """One single-node Kafka on 127.0.0.1:``port``; its data under ``run_dir/kafka``."""

    name = "kafka"
    stop_grace = 30.0  # a clean shutdown writes the recovery checkpoints

    def __init__(
        self,
        cache_dir: Path,
        run_dir: Path,
        *,
        port: int = 9092,
        controller_port: int = 0,
        partitions: int = 4,
        java: str = "java",
        mvn: str = "mvn",
        heap: str = "1g",
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.run_dir = Path(run_dir)
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.partitions = partitions
        self.java = java
        self.mvn = mvn
        self.heap = heap
        self._child: ChildProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def endpoints(self) -> dict[str, str]:
        return {"bootstrap": self.bootstrap}

    def is_fetched(self) -> bool:
        return is_fetched(home(self.cache_dir))

    def fetch(self) -> Path:
        return fetch_classpath(ARTIFACTS, home(self.cache_dir), self.cache_dir, name=self.name, mvn=self.mvn)

    def _config(self) -> Path:
        data = self.run_dir / "kafka"
        data.mkdir(parents=True, exist_ok=True)
        (data / "log4j2.properties").write_text(LOG4J2)
        internal = [
            "offsets.topic.replication.factor", "transaction.state.log.replication.factor",
            "transaction.state.log.min.isr", "share.coordinator.state.topic.replication.factor",
            "share.coordinator.state.topic.min.isr",
        ]  # fmt: skip
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={data / 'logs'}",
            f"num.partitions={self.partitions}",
            "group.initial.rebalance.delay.ms=0",
            *(f"{key}=1" for key in internal),
        ]
        config = data / "server.properties"
        config.write_text("\n".join(lines) + "\n")
        return config

    def _java(self, libs: Path, config: Path, *extra: str) -> list[str]:
        return [
            self.java, "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={config.parent / 'log4j2.properties'}",
            *extra, "-cp", f"{libs}/*",
        ]  # fmt: skip

    def start(self, timeout: float = 90.0) -> Kafka:
        libs = self.fetch()
        config = self._config()
        if not (self.run_dir / "kafka" / "logs" / "meta.properties").exists():
            cluster_id = _cluster_id()
            argv = [*self._java(libs, config), "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config)]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            if result.returncode != 0:
                raise BackendUnavailable(self.name, f"storage format failed: {result.stdout}{result.stderr}")
        argv = [
            *self._java(libs, config, f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC"),
            "kafka.Kafka", str(config),
        ]  # fmt: skip
        self._child = ChildProcess(self.name, argv, self.run_dir)
        listening = port_open(self.port)
        self._child.start(lambda: listening() and self._answers(), timeout)
        return self

    def _answers(self) -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, bootstrap_timeout_ms=2000)
        except KafkaError:
            return False
        try:
            admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()

    def create_topics(self, names: Sequence[str], partitions: int | None = None) -> None:
        """Create topics like compose's ``kafka-init`` job does (idempotent)."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError

        count = partitions or self.partitions
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, bootstrap_timeout_ms=5000)
        try:
            existing = set(admin.list_topics())
            wanted = [NewTopic(n, count, 1) for n in names if n not in existing]
            if wanted:
                try:
                    admin.create_topics(wanted)
                except TopicAlreadyExistsError:
                    pass
            deadline = time.monotonic() + 30
            while not set(names) <= set(admin.list_topics()):
                if time.monotonic() > deadline:
                    raise BackendUnavailable(self.name, f"topics {list(names)} not visible after 30 s")
                time.sleep(0.2)
        except KafkaError as exc:
            raise BackendUnavailable(self.name, f"creating topics: {exc}") from exc
        finally:
            admin.close()



def _cluster_id() -> str:
    """A cluster id the way ``kafka-storage.sh random-uuid`` makes one: 16 random bytes, base64url."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")

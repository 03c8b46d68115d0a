"""Prometheus (Debian's ``prometheus`` package) scraping our services on loopback.

The config is compose/monitoring/prometheus.yml with each compose host name replaced by 127.0.0.1 and
the port our services use when run outside compose on one host (``LOOPBACK_TARGETS``): the api and
ranking services on the ports compose publishes, and the two workers — one port (9464) each inside
compose — on 9464 and 9465. Its TSDB lives under the run dir.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from labcore.engines.process import ChildProcess, SingleProcessEngine, free_port, http_ok
from labcore.errors import BackendUnavailable

COMPOSE_CONFIG = Path(__file__).resolve().parents[2] / "compose" / "monitoring" / "prometheus.yml"
# compose "host:port" -> the loopback port that service listens on when run as a plain process.
LOOPBACK_TARGETS = {
    "api:8000": 8000,
    "ranking:8001": 8001,
    "fanout-worker:9464": 9464,
    "embedding-worker:9464": 9465,
}
TARGET = re.compile(r'"([A-Za-z0-9_.-]+):(\d+)"')


def loopback_config(text: str, port: int, targets: Mapping[str, int] = LOOPBACK_TARGETS) -> str:
    """compose's prometheus.yml with every target on 127.0.0.1 (Prometheus itself on ``port``)."""

    def replace(match: re.Match[str]) -> str:
        target = f"{match[1]}:{match[2]}"
        if match[1] == "localhost" and int(match[2]) == 9090:
            return f'"127.0.0.1:{port}"'
        if target not in targets:
            raise ValueError(f"no loopback port for the compose target {target}")
        return f'"127.0.0.1:{targets[target]}"'

    return TARGET.sub(replace, text)


class Prometheus(SingleProcessEngine):
    """One Prometheus on 127.0.0.1:``port`` with the compose scrape config mapped to loopback."""

    name = "prometheus"

    def __init__(
        self,
        run_dir: Path,
        *,
        port: int = 9090,
        binary: str = "prometheus",
        targets: Mapping[str, int] = LOOPBACK_TARGETS,
        config: Path = COMPOSE_CONFIG,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.port = port or free_port()
        self.binary = binary
        self.targets = dict(targets)
        self.config = config
        self._child: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoints(self) -> dict[str, str]:
        return {"url": self.url}

    def is_fetched(self) -> bool:
        return shutil.which(self.binary) is not None

    def fetch(self) -> str:
        found = shutil.which(self.binary)
        if found is None:
            raise BackendUnavailable(self.name, "no prometheus binary: sudo apt-get install prometheus (Debian/Ubuntu)")
        return found

    def start(self, timeout: float = 60.0) -> Prometheus:
        binary = self.fetch()
        folder = self.run_dir / "prometheus"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "prometheus.yml"
        config.write_text(loopback_config(self.config.read_text(), self.port, self.targets))
        argv = [
            binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]  # fmt: skip
        self._child = ChildProcess(self.name, argv, self.run_dir)
        self._child.start(http_ok(f"{self.url}/-/ready"), timeout)
        return self

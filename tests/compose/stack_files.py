"""Reading compose/ the way docker compose and kubectl would, for the static checks (no Docker)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from labcore.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
K8S_DIR = COMPOSE_DIR / "k8s"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
STACK_INIT = COMPOSE_DIR / "init" / "stack_init.py"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")

# What each service listens on inside the network (for addresses other containers use).
LISTENS: dict[str, set[int]] = {
    "api": {8000},
    "ranking": {8001},
    "fanout-worker": {9464},
    "embedding-worker": {9464},
    "tidb": {4000, 10080},
    "redis": {6379},
    "kafka": {9092},
    "qdrant": {6333},
    "seaweedfs": {9000},
    "zookeeper": {2181},
    "pinot-controller": {9000},
    "pinot-broker": {8099},
    "pinot-server": {8097, 8098},
    "feast-feature-store": {6566},
    "jaeger": {16686, 4317, 4318},
    "prometheus": {9090},
    "grafana": {3000},
    "jupyter": {8888},
}

# Compose's own syntax: `$$` is a literal `$`; `${NAME}`, `${NAME-default}`, `${NAME:-default}`.
_TOKEN = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")
FEEDLAB_NAME = re.compile(r"\bFEEDLAB_[A-Z0-9_]+\b")


def interpolate(text: str, env: Mapping[str, str] | None = None) -> str:
    """Fill in ``${...}`` as compose does with ``env`` set (default: nothing set, a fresh checkout)."""
    env = env or {}

    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match["name"], match["default"] or "")

    return _TOKEN.sub(fill, text)


def interpolated_names(text: str) -> set[str]:
    """Every variable a compose file fills in."""
    return {m["name"] for m in _TOKEN.finditer(text) if m["name"]}


@cache
def compose() -> dict[str, Any]:
    """The compose file after interpolation with its defaults (YAML merge keys resolved)."""
    return yaml.safe_load(interpolate(COMPOSE_FILE.read_text()))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def is_job(service: Mapping[str, Any]) -> bool:
    """A one-shot init job: it runs once and exits (``restart: "no"``)."""
    return service.get("restart") == "no"


def long_running() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if not is_job(svc)}


def jobs() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if is_job(svc)}


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as strings (compose accepts a mapping or KEY=VALUE list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def feedlab_env(service: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in environment(service).items() if k.startswith("FEEDLAB_")}


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The Settings a process with exactly ``env`` would build (no .env file, nothing inherited).

    Callers must clear the test process's own FEEDLAB_* variables first (the ``clean_env`` fixture).
    """
    values = {key.removeprefix("FEEDLAB_").lower(): value for key, value in env.items()}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def setting_names() -> set[str]:
    return {f"FEEDLAB_{name.upper()}" for name in Settings.model_fields}


def command(service: Mapping[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return cmd if isinstance(cmd, list) else [cmd]


def published_ports(service: Mapping[str, Any]) -> set[tuple[str, int, int]]:
    """``(host_ip, host_port, container_port)`` for each ``ports:`` entry (short syntax)."""
    out = set()
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        out.add((host_ip, int(parts[-2]), int(parts[-1].split("/")[0])))
    return out


def env_example() -> dict[str, tuple[str, bool]]:
    """``NAME -> (value, active)`` for every ``NAME=value`` line, commented out or not."""
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(\S*)", line)
        if match:
            out[match[2]] = (match[3], match[1] is None)
    return out


# --- Kubernetes -----------------------------------------------------------------------------------
def k8s_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.rglob("*.yaml") if p != KUSTOMIZATION)


@cache
def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in k8s_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_objects() if doc["kind"] == kind}


def workloads() -> dict[str, dict[str, Any]]:
    """Deployments and StatefulSets by name."""
    return k8s_kind("Deployment") | k8s_kind("StatefulSet")


def pod_containers(obj: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    pod = obj["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


# --- the init script ------------------------------------------------------------------------------
@cache
def stack_init() -> ModuleType:
    """``compose/init/stack_init.py``, imported by path (compose/ is not a package)."""
    spec = importlib.util.spec_from_file_location("stack_init", STACK_INIT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stack_init"] = module
    spec.loader.exec_module(module)
    return module

"""Jaeger v2 (an OpenTelemetry Collector build) from the Go module proxy, built once into the cache.

Jaeger's go.mod has ``replace`` directives, which ``go install pkg@version`` refuses; a small wrapper
module that requires it as a tool builds it instead (``go get -tool`` + ``go build``). Go's module and
build caches live in the engines cache too, so a cold build (~13 min on 2 cores) happens once per
version, and ``-modcacherw`` keeps that cache deletable.

It runs with a config generated here rather than the built-in all-in-one one, so every port is ours
to choose and bound to 127.0.0.1: OTLP gRPC/HTTP in, spans kept in memory, the query API
(``/api/traces``) out, a health endpoint for readiness, and the collector's own metrics off.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from labcore.engines.process import (
    ChildProcess,
    SingleProcessEngine,
    child_environment,
    free_port,
    http_ok,
    log_tail,
)
from labcore.errors import BackendUnavailable

VERSION = "v1.75.0"  # the Go module version of Jaeger v2.12.0
MODULE = "github.com/jaegertracing/jaeger"

CONFIG = """service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: {max_traces}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health_port}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc_port}
      http:
        endpoint: 127.0.0.1:{otlp_http_port}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def home(cache_dir: Path) -> Path:
    return cache_dir / f"jaeger-{VERSION}"


def binary(cache_dir: Path) -> Path:
    return home(cache_dir) / "bin" / "jaeger"


def build(cache_dir: Path, go: str = "go", timeout: float = 3600) -> Path:
    """Build ``jaeger`` into the cache unless it is there; return its path."""
    target = binary(cache_dir)
    if target.exists():
        return target
    if shutil.which(go) is None:
        raise BackendUnavailable("jaeger", f"Go ({go}) not found: Jaeger is built from the Go module proxy")
    src = home(cache_dir) / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    env = {
        "GOMODCACHE": str(cache_dir / "go" / "mod"),
        "GOCACHE": str(cache_dir / "go" / "build"),
        "GOFLAGS": "-buildvcs=false -modcacherw",
        "GOTOOLCHAIN": "local",  # never download a toolchain: this Go builds it or says why not
        "CGO_ENABLED": "0",
    }
    log = home(cache_dir) / "build.log"
    partial = target.with_suffix(".partial")
    steps = [
        [go, "mod", "init", "local/jaeger"],
        [go, "get", "-tool", f"{MODULE}/cmd/jaeger@{VERSION}"],
        [go, "build", "-trimpath", "-o", str(partial), f"{MODULE}/cmd/jaeger"],
    ]
    child_env = child_environment(env)
    with open(log, "ab") as out:
        for step in steps:
            out.write(f"--- {' '.join(step)}\n".encode())
            out.flush()
            result = subprocess.run(step, cwd=src, env=child_env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            if result.returncode != 0:
                raise BackendUnavailable("jaeger", f"{' '.join(step[:3])} failed; {log}:\n{log_tail(log)}")
    partial.rename(target)  # last, so an interrupted build is redone rather than half-used
    return target


class Jaeger(SingleProcessEngine):
    """Jaeger all-in-one (memory store) with OTLP in and the query API out, on 127.0.0.1."""

    name = "jaeger"

    def __init__(
        self,
        cache_dir: Path,
        run_dir: Path,
        *,
        query_port: int = 16686,
        otlp_grpc_port: int = 4317,
        otlp_http_port: int = 4318,
        go: str = "go",
        max_traces: int = 100_000,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.run_dir = Path(run_dir)
        self.query_port = query_port or free_port()
        self.otlp_grpc_port = otlp_grpc_port or free_port()
        self.otlp_http_port = otlp_http_port or free_port()
        self.go = go
        self.max_traces = max_traces
        self._child: ChildProcess | None = None

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def otlp_http_url(self) -> str:
        return f"http://127.0.0.1:{self.otlp_http_port}"

    def endpoints(self) -> dict[str, str]:
        return {
            "query": self.query_url,
            "otlp_http": self.otlp_http_url,
            "otlp_grpc": f"127.0.0.1:{self.otlp_grpc_port}",
        }

    def is_fetched(self) -> bool:
        return binary(self.cache_dir).exists()

    def fetch(self) -> Path:
        return build(self.cache_dir, self.go)

    def start(self, timeout: float = 60.0) -> Jaeger:
        jaeger = self.fetch()
        folder = self.run_dir / "jaeger"
        folder.mkdir(parents=True, exist_ok=True)
        health_port = free_port()
        config = folder / "config.yaml"
        config.write_text(
            CONFIG.format(
                max_traces=self.max_traces,
                query_port=self.query_port,
                query_grpc_port=free_port(),
                health_port=health_port,
                otlp_grpc_port=self.otlp_grpc_port,
                otlp_http_port=self.otlp_http_port,
            )
        )
        self._child = ChildProcess(self.name, [str(jaeger), "--config", str(config)], self.run_dir)
        health = http_ok(f"http://127.0.0.1:{health_port}/status")
        services = http_ok(f"{self.query_url}/api/services")
        self._child.start(lambda: health() and services(), timeout)
        return self

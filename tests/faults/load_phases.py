"""Background HTTP load for fault tests: threads that keep calling the API and log every answer.

Each call is logged with when it started and ended, so a test can pick exactly the requests that
ran entirely inside an outage window and hold every one of them to the degraded contract.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Call:
    kind: str
    started: float
    ended: float
    status: int  # 0: no HTTP answer at all (connection refused, timeout)
    body: Any


@dataclass
class Load:
    """Run ``calls`` (kind -> function(http) -> response) round-robin on ``threads`` threads."""

    api_url: str
    calls: dict[str, Callable[[httpx.Client], httpx.Response]]
    threads: int = 4
    log: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self, n: int) -> None:
        kinds = list(self.calls)
        i = n
        with httpx.Client(base_url=self.api_url, timeout=30) as http:
            while not self._stop.is_set():
                kind = kinds[i % len(kinds)]
                i += 1
                started = time.monotonic()
                try:
                    response = self.calls[kind](http)
                    status = response.status_code
                    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else response.text
                except httpx.HTTPError as exc:
                    status, body = 0, repr(exc)
                with self._lock:
                    self.log.append(Call(kind, started, time.monotonic(), status, body))

    def between(self, start: float, end: float, kind: str | None = None) -> list[Call]:
        """Calls that started after ``start`` and ended before ``end``."""
        with self._lock:
            return [c for c in self.log if c.started >= start and c.ended <= end and (kind is None or c.kind == kind)]

    def all(self, kind: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.log if kind is None or c.kind == kind]

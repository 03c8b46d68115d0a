"""Taking an in-process backend down on purpose, to watch the feed degrade (and recover).

Servers are stopped for real (the runtime stops redis-server, the ranking service, Feast's feature
server). Qdrant Edge and DuckDB are libraries inside the runtime process, with no server to
stop, so the runtime puts them behind a ``Gate``: while it is closed every call raises
``BackendUnavailable`` — exactly what the adapter raises when its engine is unreachable — and the
feed takes its named fallback. Opening the gate restores the adapter untouched.

This is a fault-injection switch the learner flips from a notebook cell (``lab.stop("vectors")``),
never a hidden fallback: while it is closed, ``/health`` says so and so does every feed response.
"""

from __future__ import annotations

import threading
from typing import Any

from labcore.errors import BackendUnavailable


class Gate:
    """A transparent proxy around an adapter that can be closed and opened."""

    def __init__(self, component: str, target: Any) -> None:
        self._component = component
        self._target = target
        self._closed = threading.Event()

    @property
    def is_closed(self) -> bool:
        return self._closed.is_set()

    def close_gate(self) -> None:
        self._closed.set()

    def open_gate(self) -> None:
        self._closed.clear()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._closed.is_set():
                raise BackendUnavailable(self._component, "stopped from the lab (feedlab fault injection)")
            return attr(*args, **kwargs)

        return guarded

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"Gate({self._component}, {state}, {self._target!r})"


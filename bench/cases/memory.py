"""Case 8 — memory: peak RSS of the runtime process with the world loaded.

Read from ``/proc/<pid>/status`` of the runtime's pid (``runtime.json``): ``VmHWM`` is the peak
resident set since the process started (the model, Qdrant's in-memory copy of the vectors, Feast,
the servers and workers, after every case that ran before this one), ``VmRSS`` the current one. The
redis-server child is a separate process and is reported beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench.report import CaseResult


def proc_status_kib(pid: int) -> dict[str, int]:
    """``VmHWM``, ``VmRSS``, ``VmPeak``, ... of ``pid`` in KiB, from /proc (empty when unavailable)."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name.startswith("Vm") and rest.strip().endswith("kB"):
                values[name] = int(rest.split()[0])
    except OSError:
        pass
    return values


def run(
    pid: int, *, redis_pid: int | None = None, world: str = "", quick: bool = False, say: Callable[[str], None] = print
) -> CaseResult:
    started = time.perf_counter()
    status = proc_status_kib(pid)
    redis_status = proc_status_kib(redis_pid) if redis_pid else {}
    hwm_mib = status.get("VmHWM", 0) / 1024
    rss_mib = status.get("VmRSS", 0) / 1024
    redis_mib = redis_status.get("VmHWM", 0) / 1024 if redis_status else None
    say(f"  memory: runtime pid {pid} peak RSS {hwm_mib:,.0f} MiB (now {rss_mib:,.0f}); redis-server peak {redis_mib or 0:,.0f} MiB")
    result = CaseResult(
        name="memory", title="8 · Memory",
        headline=f"runtime peak RSS {hwm_mib:,.0f} MiB ({world or 'this'} world)"
        + (f"; redis-server {redis_mib:,.0f} MiB" if redis_mib else ""),
        target=None, target_label="— (report)",
    )  # fmt: skip
    result.figures = {
        "pid": pid,
        "runtime_peak_rss_mib": hwm_mib,
        "runtime_rss_now_mib": rss_mib,
        "runtime_peak_virtual_mib": status.get("VmPeak", 0) / 1024,
        "redis_server_peak_rss_mib": redis_mib,
    }
    result.notes = [
        "VmHWM of the runtime pid from runtime.json, read after the catch-up, feed, 8-client and features"
        " cases ran against it (the peak therefore includes their load; freshness has its own runtime)."
    ]
    if not status:
        result.error = f"/proc/{pid}/status is not readable"
    result.seconds = time.perf_counter() - started
    return result

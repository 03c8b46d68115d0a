"""Case 9 — the ``large`` world (10,000 users, 100,000 posts): catch-up, feed latency, peak RSS.

Its own runtime on a wiped ``/tmp/feedlab-bench-large``: case 2's catch-up measurement (seed →
every post encoded once, indexed, with fresh features; against bare encode in the same run), then
case 3's sequential feed loop, then case 8's peak RSS of the runtime. It takes long (100,000
encodes: 17 min of catch-up, 19 min in all, on a 2-core machine), so it is not in the default run:
``feedlab bench --case large`` runs it alone and updates only this section of the report; a
default run carries the last large section over (with its own date and load average).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench.report import CaseResult, loadavg

SIZE = "large"


def run(
    *, seed: int, data_dir: Path | None, requests: int = 300, catchup_timeout: float = 7200.0, quick: bool = False,
    say: Callable[[str], None] = print,
) -> CaseResult:  # fmt: skip
    from bench.cases import catchup, feed, memory
    from bench.session import close_session, start_session

    size = "tiny" if quick else SIZE
    started = time.perf_counter()
    load_start = loadavg()
    session = None
    try:
        session = start_session(size, seed, data_dir, fresh=True, say=say)
        caught = catchup.run(session, timeout=catchup_timeout, quick=quick, say=say)
        read = feed.run(session, requests=requests, quick=quick, say=say)
        peak = memory.run(session.pid, world=size, quick=quick, say=say)
    finally:
        close_session(session, say)
    c, f, m = caught.figures, read.figures, peak.figures
    result = CaseResult(
        name="large", title="9 · Large world",
        headline=f"{c['posts']:,} posts ready {c['catchup_seconds_after_seed']:.0f} s after seed"
        f" ({c['posts_per_s_after_seed']:,.0f} posts/s vs bare {c['bare_posts_per_s']:,.0f}/s, {c['encodes_total']:,}"
        f" encodes); feed p50 {f['client_ms']['p50']:.1f} ms, p99 {f['client_ms']['p99']:.1f} ms;"
        f" peak RSS {m['runtime_peak_rss_mib']:,.0f} MiB",
        ratio=caught.ratio, ratio_label="catch-up posts/s / bare batched encode", target=None,
        target_label="— (report)",
    )  # fmt: skip
    result.figures = {
        "world": session.world if session else {},
        "catchup": {k: v for k, v in c.items() if k != "progress_s_embedded_indexed"},
        "catchup_progress_s_embedded_indexed": c.get("progress_s_embedded_indexed"),
        "feed": {k: f[k] for k in ("requests", "client_ms", "server_ms", "stage_p50_ms", "stage_p99_ms",
                                    "overhead_ratio_server", "runtime_cpu_ms_per_request", "cold_reads")},
        "memory": m,
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
    }  # fmt: skip
    result.notes = [
        f"Its own runtime and a fresh {size} world; the same measurements as cases 2, 3 and 8 (see there).",
        *[f"catch-up: {n}" for n in caught.notes[2:]],
        *[f"feed: {n}" for n in read.notes[1:]],
    ]
    result.seconds = time.perf_counter() - started
    return result

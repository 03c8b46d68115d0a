"""What grows with followers, posts and candidates (notebook 09): measured live, small and quick.

Pure functions (``mailbox_bound``, ``summarize_feeds``, ``benchmark_frame``) turn rows into the numbers a
lesson plots; the functions taking a ``LabClient`` measure the running stack (mailboxes written, Redis's
own ``MEMORY USAGE``, timed feed requests) in seconds, never minutes. The fan-out cost model is notebook
02's (``labcore.widgets.fanout``), reused rather than copied. Nothing here invents a figure: the
benchmark report is read from disk if it exists and reported missing if it does not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcore.adapters.redis.mailboxes import mailbox_key
from labcore.widgets.fanout import make_celebrity
from labcore.widgets.feed import STAGES
from labcore.widgets.write_path import delivered_to, wait_until

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from labcore.lab.client import LabClient

REPO_ROOT = Path(__file__).resolve().parents[2]
# Where a benchmark report is looked for, first hit wins: ``feedlab bench`` writes docs/benchmarks.json
# (and .md); build/benchmarks/report.json is a local run's override. ``--quick`` runs write elsewhere.
BENCHMARK_REPORTS: tuple[str, ...] = (
    "build/benchmarks/report.json",
    "docs/benchmarks.json",
    "docs/benchmarks.md",
)


# --- fan-out on write, measured ---------------------------------------------------------------------
# The world-level cost model (author_stats, fanout_cost, fanout_scatter) is notebook 02's, in
# labcore.widgets.fanout; here we only add the live measurement and the memory bound.


@dataclass(frozen=True)
class FanoutMeasurement:
    followers: int
    mailboxes_holding_post: int
    worker_deliveries: int
    seconds: float


def measure_fanout(lab: LabClient, follower_counts: Sequence[int], timeout: float = 20.0) -> pd.DataFrame:
    """Post once from fresh authors with 0, 1, 5, ... followers and count the mailboxes it reached.

    Every account is new (unique names per run), so the counts are exact: the post must land in each
    follower's ``feed:{id}`` ZSET. ``worker_deliveries`` is the fan-out worker's own counter over the
    same interval (exact when nothing else is posting meanwhile).
    """
    import pandas as pd

    rows = []
    for k in follower_counts:
        author, fans = make_celebrity(lab, k, prefix=f"author{k}")  # an author with k new followers
        before = lab.health()["workers"]["fanout-worker"]
        started = time.monotonic()
        post_id = lab.post(author["user_id"], f"Fan-out probe to {k} followers.")["post_id"]

        def handled() -> dict[str, Any] | None:
            # the worker has handled a post since, and every follower's mailbox holds this one
            after = lab.health()["workers"]["fanout-worker"]
            done = after["posts"] > before["posts"] and len(delivered_to(lab, post_id, fans)) == k
            return after if done else None

        after = wait_until(handled, timeout=timeout, what=f"the post reaches {k} mailboxes")
        elapsed = round(time.monotonic() - started, 3)
        holding = len(delivered_to(lab, post_id, fans))
        rows.append(FanoutMeasurement(k, holding, after["deliveries"] - before["deliveries"], elapsed))
    return pd.DataFrame([vars(row) for row in rows])


# --- mailbox memory -------------------------------------------------------------------------------------
def mailbox_memory(lab: LabClient, limit: int = 500) -> pd.DataFrame:
    """Up to ``limit`` existing mailboxes: entries and bytes, from Redis's own ``MEMORY USAGE``."""
    import pandas as pd

    keys = []
    for key in lab.redis.scan_iter(match=mailbox_key("*"), count=500):
        name = key.decode() if isinstance(key, bytes) else key
        if not name.endswith(":built") and lab.redis.type(name) in (b"zset", "zset"):
            keys.append(name)
        if len(keys) >= limit:
            break
    pipe = lab.redis.pipeline(transaction=False)
    for key in keys:
        pipe.zcard(key)
        pipe.memory_usage(key, samples=0)
    values = pipe.execute() if keys else []
    rows = [
        {"key": key, "entries": values[2 * i], "bytes": values[2 * i + 1]}
        for i, key in enumerate(keys)
        if values[2 * i + 1] is not None  # expired between SCAN and MEMORY USAGE
    ]
    return pd.DataFrame(rows, columns=["key", "entries", "bytes"])


def mailbox_bound(users: Iterable[int], cap: int, bytes_per_full_mailbox: int) -> pd.DataFrame:
    """Worst case when every user's mailbox is full: ``cap × users`` ids, ``users × bytes`` of memory."""
    import pandas as pd

    rows = [
        {"users": n, "max_entries": cap * n, "max_bytes": n * bytes_per_full_mailbox,
         "max_MiB": round(n * bytes_per_full_mailbox / 2**20, 2)}
        for n in users
    ]  # fmt: skip
    return pd.DataFrame(rows)


# --- feed latency and candidates --------------------------------------------------------------------
def _feed_row(feed: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "candidates_social": feed["candidates_social"],
        "candidates_discovery": feed["candidates_discovery"],
        "candidates": feed["candidates_social"] + feed["candidates_discovery"],
        "items": len(feed["items"]),
        "latency_ms": feed["latency_ms"],
        **{stage: feed["stage_latency_ms"].get(stage, 0.0) for stage in STAGES},
    }


def summarize_feeds(feeds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The median of each number over repeated responses (one slow request does not set the trend)."""
    rows = [_feed_row(feed) for feed in feeds]
    return {key: sorted(row[key] for row in rows)[len(rows) // 2] for key in rows[0]}


def latency_by_limit(
    lab: LabClient, user_id: str, limits: Sequence[int] = (5, 10, 20, 50, 100, 200), repeats: int = 5
) -> pd.DataFrame:
    """Median latency per stage for each page size ``limit``, for one user."""
    import pandas as pd

    lab.feed(user_id)  # warm-up: the first request of a user builds caches the next ones reuse
    rows = []
    for limit in limits:
        summary = summarize_feeds([lab.feed(user_id, limit=limit) for _ in range(repeats)])
        rows.append({"limit": limit} | summary)
    return pd.DataFrame(rows)


def latency_by_user(lab: LabClient, users: pd.DataFrame, repeats: int = 2) -> pd.DataFrame:
    """For each user (``id`` and ``following_count`` columns): candidates and median latency."""
    import pandas as pd

    rows = []
    for user in users.itertuples():
        feeds = [lab.feed(user.id) for _ in range(repeats)]
        rows.append({"user_id": user.id, "following": user.following_count} | summarize_feeds(feeds[1:] or feeds))
    return pd.DataFrame(rows)


def latency_by_following(
    lab: LabClient, user_id: str, authors: Sequence[str], steps: Sequence[int], repeats: int = 3
) -> pd.DataFrame:
    """One user follows more and more ``authors`` (in order); candidates and latency at each step.

    A controlled experiment: same user, same world, only the following count changes. Each follow
    forgets the mailbox, so the first read after a step rebuilds it; that read is a warm-up.
    """
    import pandas as pd

    rows, following = [], 0
    for step in sorted({min(step, len(authors)) for step in steps}):  # no step past the authors there are
        for author in authors[following:step]:
            lab.follow(user_id, author)
        following = step
        lab.feed(user_id)  # warm-up: rebuilds the mailbox after the follows
        rows.append({"following": following} | summarize_feeds([lab.feed(user_id) for _ in range(repeats)]))
    return pd.DataFrame(rows)


def stage_stack_figure(frame: pd.DataFrame, x: str, title: str) -> go.Figure:
    """Stacked bars of the per-stage milliseconds against ``x``."""
    import plotly.graph_objects as go

    figure = go.Figure(
        [go.Bar(name=stage, x=frame[x].astype(str), y=frame[stage]) for stage in STAGES if stage in frame]
    )
    return figure.update_layout(
        barmode="stack", title=title, xaxis_title=x, yaxis_title="milliseconds (median)", height=380
    )


# --- the benchmark report ---------------------------------------------------------------------------
def find_benchmark_report(root: Path = REPO_ROOT) -> Path | None:
    """The first benchmark report that exists under ``root`` (see ``BENCHMARK_REPORTS``), or None."""
    for relative in BENCHMARK_REPORTS:
        path = root / relative
        if path.is_file():
            return path
    return None


def is_bench_report(report: Any) -> bool:
    """True for a ``feedlab bench`` report (``docs/benchmarks.json``): a mapping with ``cases``."""
    return isinstance(report, Mapping) and isinstance(report.get("cases"), list)


def verdict(case: Mapping[str, Any]) -> str:
    if case.get("error"):
        return "error"
    if case.get("met") is None:
        return "no target"
    return "met" if case["met"] else "missed"


def benchmark_frame(report: Any) -> pd.DataFrame:
    """A JSON benchmark report as a table.

    A ``feedlab bench`` report becomes one row per case: headline, ratio, target and verdict, as the
    run wrote them. ``bench.feed_latency --json`` writes one object whose ``summary`` holds the figures
    (and whose ``samples`` hold every raw request): that becomes one ``figure | value`` row per
    flattened key. A list of result objects becomes one row per result.
    """
    import pandas as pd

    if is_bench_report(report):
        rows = [
            {"case": c["title"], "headline": c["headline"], "ratio": c.get("ratio"), "ratio is": c.get("ratio_label"),
             "target": c.get("target_label"), "verdict": verdict(c)}
            for c in report["cases"]
        ]  # fmt: skip
        return pd.DataFrame(rows, columns=["case", "headline", "ratio", "ratio is", "target", "verdict"])
    if not isinstance(report, Mapping):
        return pd.json_normalize(report)
    figures = report.get("summary", report)
    flat = pd.json_normalize({k: v for k, v in figures.items() if not isinstance(v, list)}).to_dict("records")[0]
    return pd.DataFrame({"figure": list(flat), "value": [str(v) for v in flat.values()]})


def missed_explained(report: Mapping[str, Any]) -> str:
    """Markdown: for each case whose target was missed, the report's own account of the miss — its
    notes from the first that starts "Missed" (the measured shortfall, then where the time went)."""
    parts = []
    for case in report["cases"]:
        if verdict(case) != "missed":
            continue
        notes = case.get("notes", [])
        start = next((i for i, note in enumerate(notes) if note.startswith("Missed")), len(notes))
        lines = [f"- {note}" for note in notes[start:]] or ["- (the report gives no explanation)"]
        parts.append(f"**{case['title']}** — {case['headline']}\n\n" + "\n".join(lines))
    return "\n\n".join(parts) if parts else "Every target in this report was met."


def load_benchmark_report(path: Path) -> str | pd.DataFrame:
    """Markdown as text, JSON as a table."""
    if path.suffix == ".json":
        return benchmark_frame(json.loads(path.read_text()))
    return path.read_text()


def read_bench_report(root: Path = REPO_ROOT) -> dict[str, Any] | None:
    """The first JSON ``feedlab bench`` report under ``root`` (``BENCHMARK_REPORTS``), or None."""
    for relative in BENCHMARK_REPORTS:
        path = root / relative
        if path.suffix == ".json" and path.is_file():
            report = json.loads(path.read_text())
            if is_bench_report(report):
                return report
    return None


def bench_case(report: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return next((c for c in report["cases"] if c["name"] == name), None)


def bench_ratio_figure(report: Mapping[str, Any]) -> go.Figure:
    """Each case with a target: its measured ratio next to the target (higher is better)."""
    import plotly.graph_objects as go

    cases = [c for c in report["cases"] if c.get("ratio") is not None and c.get("target") is not None]
    colors = {"met": "seagreen", "missed": "indianred", "error": "gray", "no target": "steelblue"}
    figure = go.Figure(
        [
            go.Bar(name="measured ratio", x=[c["title"] for c in cases], y=[c["ratio"] for c in cases],
                   marker_color=[colors[verdict(c)] for c in cases],
                   text=[f"{c['ratio']:.2f}" for c in cases], hovertext=[c["ratio_label"] for c in cases]),
            go.Scatter(name="target", x=[c["title"] for c in cases], y=[c["target"] for c in cases],
                       mode="markers", marker={"symbol": "line-ew-open", "size": 40, "color": "black"}),
        ]
    )  # fmt: skip
    machine = report.get("machine", {})
    return figure.update_layout(
        title=f"Ratios vs targets — {report.get('size')} world, load {machine.get('loadavg_start')} → "
        f"{machine.get('loadavg_end')} on {machine.get('cpu_count')} cores",
        yaxis_title="ratio (≥ target is met)", height=380,
    )


def bench_stage_figure(report: Mapping[str, Any]) -> go.Figure | None:
    """Case 3's per-stage medians and p99s (ms), or None when the report has no feed case."""
    import plotly.graph_objects as go

    case = bench_case(report, "feed")
    if case is None or "stage_p50_ms" not in case.get("figures", {}):
        return None
    p50, p99 = case["figures"]["stage_p50_ms"], case["figures"].get("stage_p99_ms", {})
    figure = go.Figure(
        [go.Bar(name="p50", x=list(p50), y=list(p50.values())), go.Bar(name="p99", x=list(p99), y=list(p99.values()))]
    )
    return figure.update_layout(
        barmode="group", title=f"GET /feed per stage — {case['headline']}", yaxis_title="milliseconds", height=380
    )


def bench_catchup_figure(report: Mapping[str, Any], name: str = "catchup") -> go.Figure | None:
    """Case 2's catch-up (or the large case's): posts embedded and indexed over time, next to bare encode.

    The dashed line is what bare ``model.encode`` at the run's measured rate would have done from the
    moment the seed returned: the catch-up's ratio is how close the runtime stays to it.
    """
    import plotly.graph_objects as go

    case = bench_case(report, name)
    if case is None or case.get("error"):
        return None
    figures = case.get("figures", {})
    catchup = figures.get("catchup", figures)  # the large case nests its catch-up figures
    progress = figures.get("catchup_progress_s_embedded_indexed") or catchup.get("progress_s_embedded_indexed")
    if not progress or "bare_posts_per_s" not in catchup:
        return None
    t, embedded, indexed = zip(*progress, strict=True)
    seeded, start = catchup["seed_seconds"], catchup["encoded_when_seed_returned"]
    ready = seeded + catchup["catchup_seconds_after_seed"]
    bare_end = seeded + (catchup["posts"] - start) / catchup["bare_posts_per_s"]
    figure = go.Figure(
        [
            go.Scatter(name="embedded (runtime)", x=t, y=embedded, mode="lines"),
            go.Scatter(name="in the HNSW index", x=t, y=indexed, mode="lines", line={"shape": "hv"}),
            go.Scatter(name="bare encode from seed return", x=[seeded, bare_end], y=[start, catchup["posts"]],
                       mode="lines", line={"dash": "dash", "color": "black"}),
        ]
    )  # fmt: skip
    figure.add_vline(x=seeded, line_dash="dot", annotation_text="seed returned")
    figure.add_vline(x=ready, line_dash="dot", annotation_text="ready")
    return figure.update_layout(
        title=f"{case['title']}: {catchup['posts']:,} posts — ready {catchup['catchup_seconds_after_seed']:.0f} s after the"
        f" seed returned, {case.get('ratio') or 0:.2f} of bare encode's rate",
        xaxis_title="seconds since the seed started", yaxis_title="posts", height=380,
    )

"""Feed read-path latency benchmark against a real embedded runtime (``feedlab up``).

    python -m bench.feed_latency                        # medium world, 500 requests (takes minutes)
    python -m bench.feed_latency --size small --requests 300
    python -m bench.feed_latency --data-dir /tmp/feedlab-medium --json /tmp/medium.json

What it does:

1. Starts a fresh embedded runtime (``python -m labcore.lab.cli up``) in a temporary data dir on free
   ports — or in ``--data-dir``, so a seeded world is reused across runs (seeding medium takes
   minutes: ~20,000 posts are embedded on the CPU). A runtime already running in ``--data-dir`` is
   used as is and left running.
2. Seeds the world through the real write path, then waits until the pipeline has caught up: outbox
   backlog 0, every consumer group of ``new-posts`` and ``engagements`` has read and acked
   everything (Redis Streams: last-delivered-id = last-generated-id, pending 0), the embedding
   worker has embedded every post it was sent, the feature worker is idle.
3. Sends ``--warmup`` then ``--requests`` sequential ``GET /feed/?user_id=`` over HTTP (keep-alive),
   users drawn with a seeded RNG from users who follow at least one account. Records the client's
   wall time, the server's ``latency_ms`` and every ``stage_latency_ms``.
4. Prints a Markdown report (stdout; progress goes to stderr) and optionally ``--json PATH``.
   Any non-200 response or any fallback aborts the run with exit status 1.
5. Stops the runtime it started (``python -m labcore.lab.cli down``), also on error or Ctrl-C.

Percentiles are numpy's linear interpolation. "Cold" requests are the first read of a user whose
mailbox was never built (the read rebuilds it from SQL) or who has no interest vector yet (the read
cold-starts one); they are reported separately because they do extra work once per user.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.report import machine_facts as report_machine_facts
from labcore.settings import OS_PICKED_PORTS

REPO = Path(__file__).resolve().parent.parent
MARKER = "bench_world.json"  # in the data dir: which world was seeded there
# Backends the caller's environment might point elsewhere: the benchmark is the embedded runtime.
FOREIGN_ENV = (
    "FEEDLAB_PROFILE", "FEEDLAB_REDIS_URL", "FEEDLAB_SQL_URL", "FEEDLAB_VECTOR_URL", "FEEDLAB_EVENT_LOG",
    "FEEDLAB_OLAP", "FEEDLAB_S3_ENDPOINT", "FEEDLAB_FEATURE_SERVER_URL", "FEEDLAB_RANKING_URL",
    "FEEDLAB_PUBLIC_API_URL", "FEEDLAB_FEAST_ONLINE_STORE",
)  # fmt: skip


class BenchFailure(RuntimeError):
    """The run cannot produce honest figures (non-200, a fallback, a stack that never caught up)."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the runtime ------------------------------------------------------------------------------------
class RuntimeProcess:
    """``feedlab up`` / ``feedlab down`` in ``data_dir`` on free ports, as subprocesses."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        self.env |= {"FEEDLAB_DATA_DIR": str(data_dir)} | OS_PICKED_PORTS | extra_env
        self.started = False  # True once we asked `up` to start one (so `down` is ours to call)
        self.reused_running = False

    def cli(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "labcore.lab.cli", *args],
            env=self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def up(self, timeout: float) -> None:
        self.started = True
        result = self.cli("up", "--timeout", str(timeout), timeout=timeout + 30)
        for line in (result.stdout + result.stderr).strip().splitlines():
            say(f"  feedlab up: {line}")
        if "already running" in result.stdout:
            self.started, self.reused_running = False, True  # not ours: leave it running
        if result.returncode != 0:
            log = self.data_dir / "runtime.log"
            tail = log.read_text(errors="replace").splitlines()[-40:] if log.exists() else []
            raise BenchFailure("feedlab up failed:\n" + "\n".join(tail))

    def down(self) -> None:
        if not self.started:
            return
        try:
            result = self.cli("down", timeout=90)
            say(f"  feedlab down: {(result.stdout + result.stderr).strip()}")
        except subprocess.TimeoutExpired:
            say("  feedlab down timed out")
        self.started = False


# --- waiting for the pipeline ---------------------------------------------------------------------
def _id_tuple(entry_id: str | None) -> tuple[int, int]:
    if not entry_id:
        return (0, 0)
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0))


def stream_groups(redis_client: Any, partitions: int) -> dict[str, dict[str, int]]:
    """Per consumer group of ``new-posts`` and ``engagements``: pending entries and lagging streams.

    Redis 6.2 has no ``lag`` field, so a stream counts as lagging for a group while the group's
    last-delivered-id is behind the stream's last-generated-id.
    """
    import redis

    from labcore.adapters.events.redis_streams import stream_name
    from labcore.domain import TOPIC_ENGAGEMENTS, TOPIC_NEW_POSTS

    expected = {TOPIC_NEW_POSTS: ("fanout", "embedding"), TOPIC_ENGAGEMENTS: ("interests", "features")}
    state: dict[str, dict[str, int]] = {}
    for topic, names in expected.items():
        for name in names:
            state[f"{topic}/{name}"] = {"pending": 0, "lagging_streams": 0}
        for partition in range(partitions):
            stream = stream_name(topic, partition)
            try:
                last = _id_tuple(redis_client.xinfo_stream(stream)["last-generated-id"])
                groups = {g["name"]: g for g in redis_client.xinfo_groups(stream)}
            except redis.ResponseError:  # no such stream: nothing was ever published there
                continue
            for name in names:
                group = groups.get(name)
                row = state[f"{topic}/{name}"]
                if group is None:
                    row["lagging_streams"] += 1 if last > (0, 0) else 0
                    continue
                row["pending"] += int(group["pending"])
                row["lagging_streams"] += 1 if _id_tuple(group["last-delivered-id"]) < last else 0
    return state


def wait_for_pipeline(lab: Any, counts: dict[str, int], *, fresh: bool, timeout: float, poll: float = 2.0) -> float:
    """Block until the write pipeline has caught up; returns the seconds waited."""
    started = time.monotonic()
    consecutive_ok, last_print, last_embedded = 0, 0.0, (started, 0)
    while True:
        health = lab.health()
        workers = health.get("workers", {})
        backlog = health.get("outbox_backlog")
        groups = stream_groups(lab.redis, lab.settings.event_partitions)
        embedded = int(workers.get("embedding-worker", {}).get("posts", 0))
        feature = workers.get("feature-worker", {})
        feature_idle = feature.get("last_batch_at") is None or time.time() - feature["last_batch_at"] > 1.0
        streams_done = all(g["pending"] == 0 and g["lagging_streams"] == 0 for g in groups.values())
        # A reused world's runtime restarted with fresh counters: the streams are the truth there.
        counters_done = not fresh or (
            embedded >= counts["posts"] and int(feature.get("likes", 0)) >= counts["likes"]
        )
        ok = backlog == 0 and streams_done and counters_done and feature_idle
        consecutive_ok = consecutive_ok + 1 if ok else 0
        now = time.monotonic()
        if consecutive_ok >= 2:  # twice in a row, `poll` seconds apart: nothing more trickles in
            say(f"  pipeline caught up after {now - started:.1f}s (embedded {embedded} posts this run)")
            return now - started
        if now - last_print >= 10 or ok:
            rate = (embedded - last_embedded[1]) / max(now - last_embedded[0], 1e-9)
            last_embedded = (now, embedded)
            eta = f", ETA {(counts['posts'] - embedded) / rate:.0f}s" if fresh and rate > 0 else ""
            behind = {k: v for k, v in groups.items() if v["pending"] or v["lagging_streams"]}
            failures = {n: w["failures"] for n, w in workers.items() if w.get("failures")}
            say(
                f"  waiting {now - started:5.0f}s: outbox backlog {backlog}; embedded {embedded}/{counts['posts']}"
                f" ({rate:.0f}/s{eta}); fan-out {workers.get('fanout-worker', {}).get('posts', 0)};"
                f" features likes {feature.get('likes', 0)}/{counts['likes']}; groups behind {behind or 'none'}"
                + (f"; worker failures (retried) {failures}" if failures else "")
            )
            last_print = now
        if now - started > timeout:
            raise BenchFailure(f"the pipeline did not catch up in {timeout:.0f}s (last health: {health})")
        time.sleep(poll)


# --- the measured requests -----------------------------------------------------------------------
@dataclass
class Sample:
    user_id: str
    client_ms: float
    server_ms: float
    stages: dict[str, float]
    social: int
    discovery: int
    after_filter: int
    items: int
    cold_mailbox: bool
    cold_interest: bool
    feature_source: str
    model_version: str

    @property
    def stage_sum(self) -> float:
        return sum(self.stages.values())

    @property
    def cold(self) -> bool:
        return self.cold_mailbox or self.cold_interest


@dataclass
class RunResult:
    samples: list[Sample] = field(default_factory=list)
    wall_seconds: float = 0.0
    warmup: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds used during the measured loop
    first_reads: list[Sample] = field(default_factory=list)  # warm-up reads, one per measured user


def proc_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of ``pid`` (all its threads), from /proc; None when unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / tick, sum(values) / tick


def cpu_snapshot(runtime_pid: int | None) -> dict[str, Any]:
    return {
        "runtime": proc_cpu_seconds(runtime_pid),
        "bench": proc_cpu_seconds(os.getpid()),
        "machine": machine_cpu_seconds(),
    }


def cpu_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("runtime", "bench"):
        if before[key] is not None and after[key] is not None:
            out[f"{key}_cpu_s"] = after[key] - before[key]
    if before["machine"] and after["machine"]:
        out["machine_busy_cpu_s"] = after["machine"][0] - before["machine"][0]
        out["machine_total_cpu_s"] = after["machine"][1] - before["machine"][1]
        ours = out.get("runtime_cpu_s", 0.0) + out.get("bench_cpu_s", 0.0)
        out["other_processes_cpu_s"] = max(out["machine_busy_cpu_s"] - ours, 0.0)
    return out


def idle_cpu(pid: int | None, seconds: float) -> float | None:
    """Cores the runtime burns with no request in flight (background threads), over ``seconds``."""
    before = proc_cpu_seconds(pid)
    time.sleep(seconds)
    after = proc_cpu_seconds(pid)
    return None if before is None or after is None else (after - before) / seconds


def follower_user_ids(lab: Any) -> list[str]:
    import sqlalchemy as sa

    from labcore.adapters.sql.schema import follows

    with lab.store.engine.connect() as conn:
        return sorted(conn.scalars(sa.select(follows.c.follower_id).distinct()))


def one_request(client: httpx.Client, lab: Any, user_id: str) -> Sample:
    from labcore.adapters.redis.mailboxes import built_key
    from labcore.interests import interest_key

    # Untimed: does this read do the once-per-user work (mailbox rebuild, interest cold start)?
    cold_mailbox = not lab.redis.exists(built_key(user_id))
    cold_interest = not lab.redis.exists(interest_key(user_id))
    start = time.perf_counter()
    response = client.get("/feed/", params={"user_id": user_id})
    client_ms = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise BenchFailure(f"GET /feed/?user_id={user_id} -> {response.status_code}: {response.text[:500]}")
    body = response.json()
    if body.get("fallbacks"):
        raise BenchFailure(f"GET /feed/?user_id={user_id} used fallbacks {body['fallbacks']}: the stack is degraded")
    return Sample(
        user_id=user_id,
        client_ms=client_ms,
        server_ms=float(body["latency_ms"]),
        stages={k: float(v) for k, v in body["stage_latency_ms"].items()},
        social=body["candidates_social"],
        discovery=body["candidates_discovery"],
        after_filter=body["candidates_after_filter"],
        items=len(body["items"]),
        cold_mailbox=cold_mailbox,
        cold_interest=cold_interest,
        feature_source=body.get("feature_source", ""),
        model_version=body.get("model_version", ""),
    )


def run_requests(
    lab: Any, users: list[str], *, requests: int, warmup: int, seed: int, warm_each_user: bool = False
) -> RunResult:
    """``warmup`` requests, then ``requests`` measured ones, each for a user drawn with ``seed``.

    ``warm_each_user``: the warm-up also reads once for every user the measured loop will ask for, so
    the measured requests are warm reads (a user's first read rebuilds the mailbox or cold-starts the
    interest vector); those first reads are kept in ``first_reads``.
    """
    rng = random.Random(seed)
    result = RunResult(warmup=warmup)
    with httpx.Client(base_url=lab.info.api_url, timeout=30.0) as client:
        for i in range(warmup):
            one_request(client, lab, rng.choice(users))
        sequence = [rng.choice(users) for _ in range(requests)]
        if warm_each_user:
            for user_id in dict.fromkeys(sequence):
                result.first_reads.append(one_request(client, lab, user_id))
        say(f"  warm-up done ({warmup} requests + {len(result.first_reads)} first reads); measuring {requests}")
        cpu_before = cpu_snapshot(lab.info.pid)
        started = time.perf_counter()
        for i, user_id in enumerate(sequence):
            result.samples.append(one_request(client, lab, user_id))
            if (i + 1) % 100 == 0:
                say(f"  {i + 1}/{requests} requests")
        result.wall_seconds = time.perf_counter() - started
        result.cpu = cpu_delta(cpu_before, cpu_snapshot(lab.info.pid))
    return result


# --- figures ---------------------------------------------------------------------------------------
def pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values, dtype=float)
    return {
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "mean": float(a.mean()),
    }


def summarize(run: RunResult) -> dict[str, Any]:
    s = run.samples
    stage_names: list[str] = []
    for sample in s:
        stage_names += [n for n in sample.stages if n not in stage_names]
    stage_sum_p50 = statistics.median(x.stage_sum for x in s)
    server_p50 = statistics.median(x.server_ms for x in s)
    warm, cold = [x for x in s if not x.cold], [x for x in s if x.cold]
    return {
        "requests": len(s),
        "warmup": run.warmup,
        "wall_seconds": run.wall_seconds,
        "requests_per_second": len(s) / run.wall_seconds if run.wall_seconds else None,
        "client_ms": pcts([x.client_ms for x in s]),
        "server_ms": pcts([x.server_ms for x in s]),
        "stage_sum_ms": pcts([x.stage_sum for x in s]),
        "outside_stages_ms": pcts([x.server_ms - x.stage_sum for x in s]),
        "http_overhead_ms": pcts([x.client_ms - x.server_ms for x in s]),
        "stages_ms": {n: pcts([x.stages.get(n, 0.0) for x in s]) for n in stage_names},
        "overhead_ratio": server_p50 / stage_sum_p50 if stage_sum_p50 else None,
        "candidates_median": {
            "social": statistics.median(x.social for x in s),
            "discovery": statistics.median(x.discovery for x in s),
            "after_filter": statistics.median(x.after_filter for x in s),
            "items": statistics.median(x.items for x in s),
        },
        "empty_feeds": sum(1 for x in s if x.items == 0),
        "distinct_users": len({x.user_id for x in s}),
        "cold": {
            "requests": len(cold),
            "mailbox_rebuilds": sum(x.cold_mailbox for x in s),
            "interest_cold_starts": sum(x.cold_interest for x in s),
            "server_ms_cold": pcts([x.server_ms for x in cold]),
            "server_ms_warm": pcts([x.server_ms for x in warm]),
            "client_ms_warm": pcts([x.client_ms for x in warm]),
        },
        "cpu": run.cpu,
        "runtime_cpu_ms_per_request": 1000 * run.cpu["runtime_cpu_s"] / len(s) if "runtime_cpu_s" in run.cpu else None,
        "fallbacks_seen": 0,  # any fallback aborts the run
        "non_200": 0,  # likewise
        "feature_sources": sorted({x.feature_source for x in s}),
        "model_versions": sorted({x.model_version for x in s}),
    }


def machine_facts(lab: Any | None) -> dict[str, Any]:
    """``bench.report.machine_facts`` plus the Redis server's version when a stack is attached."""
    facts = report_machine_facts()
    if lab is not None:
        try:
            facts["redis_server"] = lab.redis.info("server").get("redis_version")
        except Exception:  # noqa: BLE001 - a fact, not a requirement
            facts["redis_server"] = None
    return facts


def f(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    s, m, w = report["summary"], report["machine"], report["world"]
    lines = [f"# Feed latency — {w['size']} world (seed {w['seed']})", ""]
    lines += ["## Setup", "", "| | |", "|---|---|"]
    counts = w["counts"]
    lines.append(
        f"| world | {counts['users']} users, {counts['follows']} follows, {counts['posts']} posts,"
        f" {counts['likes']} likes |"
    )
    lines.append(f"| data dir | `{report['data_dir']}` ({report['runtime']}) |")
    lines.append(
        f"| seeding / catch-up | {f(w['seed_seconds'])} s / {f(w['catchup_seconds'])} s"
        f"{' (world reused)' if w['reused'] else ''} |"
    )
    lines.append(
        f"| requests | {s['requests']} measured after {s['warmup']} warm-up; sequential `GET /feed/?user_id=`,"
        f" one keep-alive httpx client; {s['distinct_users']} distinct users of {report['eligible_users']}"
        " who follow ≥ 1 account |"
    )
    lines.append(
        f"| responses | all 200, fallbacks: none; feature source {', '.join(s['feature_sources'])};"
        f" model {', '.join(s['model_versions'])}; empty feeds {s['empty_feeds']} |"
    )
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    lines.append(
        f"| machine | {m['cpu_count']} cores ({m['cpus_usable']} usable), {m['cpu_model']}, {m['memory_gb']} GB |"
    )
    lines.append(f"| software | Python {m['python']}, redis-server {m.get('redis_server')}; {pk} |")
    lines.append(f"| platform | {m['platform']} |")

    lines += ["", "## Latency (ms)", "", "| | p50 | p95 | p99 | max | mean |", "|---|---:|---:|---:|---:|---:|"]
    rows = [
        ("client wall time", s["client_ms"]),
        ("server `latency_ms`", s["server_ms"]),
        ("sum of stages", s["stage_sum_ms"]),
        ("server − stages (`get_user`, glue)", s["outside_stages_ms"]),
        ("client − server (HTTP, FastAPI, JSON)", s["http_overhead_ms"]),
    ]
    for name, p in rows:
        lines.append(f"| {name} | {f(p['p50'])} | {f(p['p95'])} | {f(p['p99'])} | {f(p['max'])} | {f(p['mean'])} |")

    lines += ["", "## Stages (ms)", "", "| stage | p50 | p99 | max | share of Σ p50 |", "|---|---:|---:|---:|---:|"]
    total_p50 = sum(p["p50"] for p in s["stages_ms"].values()) or 1.0
    for name, p in s["stages_ms"].items():
        lines.append(f"| {name} | {f(p['p50'], 2)} | {f(p['p99'], 2)} | {f(p['max'], 2)} | {100 * p['p50'] / total_p50:.0f}% |")

    c, cold = s["candidates_median"], s["cold"]
    lines += [
        "",
        "## Throughput, overhead, candidates",
        "",
        "| | |",
        "|---|---|",
        f"| requests/s (sequential) | {f(s['requests_per_second'], 2)} ({s['requests']} in {f(s['wall_seconds'], 2)} s) |",
        f"| overhead ratio = median(server) / median(Σ stages) | {f(s['overhead_ratio'], 3)} |",
        f"| median candidates: social / discovery / after filter | {c['social']:g} / {c['discovery']:g} /"
        f" {c['after_filter']:g} (items returned {c['items']:g}) |",
        f"| cold reads (first read: mailbox rebuild / interest cold start) | {cold['requests']}"
        f" ({cold['mailbox_rebuilds']} rebuilds, {cold['interest_cold_starts']} cold starts) |",
        f"| server p50 / p99, warm reads only | {f(cold['server_ms_warm'].get('p50'))} /"
        f" {f(cold['server_ms_warm'].get('p99'))} |",
        f"| server p50 / p99, cold reads only | {f(cold['server_ms_cold'].get('p50'))} /"
        f" {f(cold['server_ms_cold'].get('p99'))} |",
        "| fallbacks / non-200 | none / none (either aborts the run) |",
    ]
    cpu = s["cpu"]
    if "runtime_cpu_s" in cpu and "machine_busy_cpu_s" in cpu:
        cores = cpu["machine_total_cpu_s"] / s["wall_seconds"] if s["wall_seconds"] else 0
        lines.append(
            f"| CPU during the measured loop | runtime {f(s['runtime_cpu_ms_per_request'])} ms/request"
            f" ({f(cpu['runtime_cpu_s'])} s), bench client {f(cpu.get('bench_cpu_s'))} s;"
            f" machine busy {f(cpu['machine_busy_cpu_s'])} of {f(cpu['machine_total_cpu_s'])} CPU-s"
            f" (~{cores:.0f} cores), of which other processes {f(cpu['other_processes_cpu_s'])} s |"
        )
    if report.get("runtime_idle_cores") is not None:
        lines.append(f"| runtime CPU with no request in flight (after catch-up) | {report['runtime_idle_cores']:.2f} cores |")
    lines.append(f"| load average before / after | {report['machine'].get('loadavg_before')} / {report['machine'].get('loadavg_after')} |")
    return "\n".join(lines) + "\n"


# --- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["tiny", "small", "medium", "large"], default="medium")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=42, help="world seed and user-sampling seed (default 42)")
    p.add_argument("--data-dir", type=Path, default=None, help="reuse (or create) this data dir; kept afterwards")
    p.add_argument("--keep-data-dir", action="store_true", help="keep the temporary data dir")
    p.add_argument("--json", type=Path, default=None, help="also write the figures and raw samples here")
    p.add_argument("--catchup-timeout", type=float, default=3600.0)
    p.add_argument("--up-timeout", type=float, default=300.0)
    p.add_argument("--idle-seconds", type=float, default=5.0, help="measure the idle runtime's CPU this long (0: skip)")
    p.add_argument(
        "--feature-batch-seconds", type=float, default=None,
        help="FEEDLAB_FEATURE_BATCH_SECONDS for the runtime (default: the product's, 3600 — a rare"
        " reconciliation; events keep features fresh)",
    )  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    temp = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="feedlab-bench-")) if temp else args.data_dir.resolve()
    extra_env = {}
    if args.feature_batch_seconds is not None:
        extra_env["FEEDLAB_FEATURE_BATCH_SECONDS"] = str(args.feature_batch_seconds)
    runtime = RuntimeProcess(data_dir, extra_env)
    # This process's own Settings (connect, seed) must describe the same runtime.
    for key in FOREIGN_ENV:
        os.environ.pop(key, None)
    os.environ.update({k: v for k, v in runtime.env.items() if k.startswith("FEEDLAB_")})

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
    lab = None
    try:
        marker = data_dir / MARKER
        if marker.exists():
            seeded = json.loads(marker.read_text())
            if (seeded["size"], seeded["seed"]) != (args.size, args.seed):
                raise BenchFailure(f"{data_dir} holds the {seeded['size']} world (seed {seeded['seed']}), not {args.size}/{args.seed}")
        say(f"starting the runtime in {data_dir}")
        t0 = time.monotonic()
        runtime.up(args.up_timeout)
        say(f"  up in {time.monotonic() - t0:.1f}s")

        import labcore
        from labcore.settings import Settings

        lab = labcore.connect(Settings(data_dir=data_dir))
        facts = machine_facts(lab)
        say(f"seeding the {args.size} world (seed {args.seed})")
        t0 = time.monotonic()
        seeded_now = lab.seed(args.size, args.seed, progress=True)
        seed_seconds = time.monotonic() - t0
        reused = "already_seeded" in seeded_now
        marker.write_text(json.dumps({"size": args.size, "seed": args.seed}))
        counts = lab.store.counts()
        say(f"  {'reused' if reused else 'seeded'} in {seed_seconds:.1f}s: {counts}")

        say("waiting for the pipeline to catch up")
        catchup = wait_for_pipeline(lab, counts, fresh=not reused, timeout=args.catchup_timeout)
        health = lab.health()
        if health["status"] == "degraded":  # catching_up (events still queued) is not a fault
            raise BenchFailure(f"the stack is degraded before measuring: {health['components']}")
        facts["loadavg_before"] = tuple(round(x, 2) for x in os.getloadavg())

        idle = idle_cpu(lab.info.pid, args.idle_seconds) if args.idle_seconds > 0 else None
        users = follower_user_ids(lab)
        if not users:
            raise BenchFailure("no user follows anyone")
        say(f"requests: {args.warmup} warm-up + {args.requests} measured over {len(users)} eligible users")
        run = run_requests(lab, users, requests=args.requests, warmup=args.warmup, seed=args.seed)
        after = lab.health()
        facts["loadavg_after"] = tuple(round(x, 2) for x in os.getloadavg())
        report = {
            "world": {
                "size": args.size, "seed": args.seed, "counts": counts, "reused": reused,
                "seed_seconds": None if reused else seed_seconds, "catchup_seconds": catchup,
            },
            "data_dir": str(data_dir),
            "runtime": "temporary" if temp else "kept",
            "eligible_users": len(users),
            "summary": summarize(run),
            "machine": facts,
            "workers_after": after.get("workers"),
            "runtime_idle_cores": idle,
        }  # fmt: skip
        if runtime.reused_running:
            report["runtime"] += ", already running (left running)"
        print(markdown(report), flush=True)
        if args.json:
            report["samples"] = [vars(x) for x in run.samples]
            args.json.write_text(json.dumps(report, indent=2, default=str))
            say(f"wrote {args.json}")
        return 0
    except BenchFailure as exc:
        say(f"BENCHMARK FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let `down` finish
        try:
            if lab is not None:
                lab.close()
            runtime.down()
            if temp and not args.keep_data_dir:
                shutil.rmtree(data_dir, ignore_errors=True)
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)  # an ignored SIGTERM is inherited by children


if __name__ == "__main__":
    sys.exit(main())

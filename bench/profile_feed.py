"""Where a feed request spends its time, per stage: cProfile plus an all-threads stack sampler.

    python -m bench.profile_feed                      # small world, 200 profiled requests
    python -m bench.profile_feed --size tiny --requests 50 --top 8

Builds the whole embedded runtime *in this process* (``labcore.lab.runtime.Runtime``: redis-server child,
SQLite, Qdrant Edge, DuckDB, Feast's feature server and the ranking service in threads, the
workers), seeds the world, waits for the pipeline to catch up (same check as ``bench.feed_latency``),
then calls ``FeedPipeline.run`` — the code behind ``GET /feed/`` — directly, twice over:

1. **cProfile, per stage.** ``labcore.feed.pipeline.StageTimer`` is swapped, in this process only, for a
   subclass whose ``stage()`` also enables one ``cProfile.Profile`` per stage. cProfile sees the
   calling thread only, so time spent waiting on another thread (the feature server or the ranking
   service, when ``feature_read``/``ranking_read`` say "server") shows up as socket reads.
2. **Sampling, all threads.** A thread snapshots ``sys._current_frames()`` every millisecond and
   files each busy thread's stack under the stage running at that moment, so the work such waits
   stand for (servers in threads of the same process, as in ``feedlab up``) is attributed to the
   stage that asked for it. Threads parked in select/recv/wait are left out, except the request thread.
3. **Alternatives.** Each stage's expensive call timed next to the other ways the stack can answer
   it (the feature server and the ranking service over HTTP among them), on the same candidates.

No product code is changed. The data dir is temporary unless ``--data-dir`` is given.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench.feed_latency import FOREIGN_ENV, follower_user_ids, wait_for_pipeline

CURRENT_STAGE: str | None = None  # read by the sampler
PROFILES: dict[str, cProfile.Profile] = {}
PROFILING = False

IDLE_LEAVES = {"select", "poll", "epoll", "wait", "sleep", "acquire", "recv", "recv_into", "accept",
               "_wait_for_tstate_lock"}


def install_stage_hooks() -> None:
    """Swap ``labcore.feed.pipeline.StageTimer`` for one that also profiles and marks each stage."""
    import labcore.feed.pipeline as feed

    base = feed.StageTimer

    class ProfilingStageTimer(base):  # type: ignore[misc, valid-type]
        @contextmanager
        def stage(self, name: str) -> Iterator[Any]:
            global CURRENT_STAGE
            profile = PROFILES.setdefault(name, cProfile.Profile()) if PROFILING else None
            CURRENT_STAGE = name
            if profile is not None:
                profile.enable()
            try:
                with super().stage(name) as span:
                    yield span  # the pipeline sets attributes on the stage's span
            finally:
                if profile is not None:
                    profile.disable()
                CURRENT_STAGE = None

    feed.StageTimer = ProfilingStageTimer


class Sampler(threading.Thread):
    """Every ``interval`` s: each busy thread's stack, filed under the current stage."""

    def __init__(self, main_ident: int, interval: float = 0.001) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.main_ident = main_ident
        self.interval = interval
        self.stop_event = threading.Event()
        self.leaf: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)  # stage -> (thread, frame)
        self.owner: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)  # first frame in our code
        self.ticks: Counter[str] = Counter()
        self.busy: dict[str, Counter[str]] = defaultdict(Counter)  # stage -> thread -> busy ticks

    def run(self) -> None:
        me = threading.get_ident()
        while not self.stop_event.wait(self.interval):
            stage = CURRENT_STAGE
            if stage is None:
                continue
            self.ticks[stage] += 1
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                if ident != self.main_ident and _idle(frame):
                    continue
                thread = "request" if ident == self.main_ident else _thread_kind(names.get(ident, "?"))
                self.busy[stage][thread] += 1
                self.leaf[stage][(thread, _where(frame))] += 1
                self.owner[stage][(thread, _owner(frame))] += 1


def _idle(frame: Any) -> bool:
    """A parked thread: blocked in a C call (select, recv, a lock), or uvloop idling in C.

    uvicorn runs on uvloop here, whose event loop is C: an idle server thread's innermost Python
    frame is ``asyncio.runners.run``. A worker blocked in XREADGROUP sits in hiredis's socket read.
    """
    code = frame.f_code
    if code.co_name in IDLE_LEAVES or code.co_name == "read_from_socket":
        return True
    if code.co_name == "_worker" and code.co_filename.endswith("concurrent/futures/thread.py"):
        return True  # an idle executor thread, blocked in SimpleQueue.get
    return code.co_name == "run" and code.co_filename.endswith("asyncio/runners.py")


def _thread_kind(name: str) -> str:
    return "anyio-worker" if name.startswith("AnyIO worker") else name


def _where(frame: Any) -> str:
    code = frame.f_code
    return f"{code.co_name} ({_short(code.co_filename)}:{frame.f_lineno})"


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path.rsplit("/", 1)[-1]


def _owner(frame: Any) -> str:
    """The innermost frame in the lab's own code (labcore/services), else the innermost library frame."""
    f, library = frame, None
    while f is not None:
        path = f.f_code.co_filename
        if "/work/main/labcore/" in path or "/work/main/services/" in path:
            return f"{f.f_code.co_name} ({_short(path)}:{f.f_lineno})"
        if library is None and any(f"/{p}/" in path or f"/{p}." in path for p in ("feast", "qdrant_client")):
            library = f"{f.f_code.co_name} ({_short(path)}:{f.f_lineno})"
        f = f.f_back
    return library or _where(frame)


class GcWatch:
    """Every garbage collection in this process: generation and pause (gc.callbacks)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, int]] = []  # (generation, ms, collected)
        self._start = 0.0
        self.active = False

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        elif self.active:
            self.pauses.append((info["generation"], (time.perf_counter() - self._start) * 1000, info["collected"]))

    def report(self, seconds: float) -> str:
        lines = ["", f"### garbage collections during the sampling pass ({seconds:.1f} s)", "```"]
        for gen in (0, 1, 2):
            ms = [p[1] for p in self.pauses if p[0] == gen]
            if ms:
                lines.append(f"gen{gen}: {len(ms):5d} collections, total {sum(ms):8.1f} ms, max {max(ms):7.1f} ms")
        import gc

        lines.append(f"objects tracked by the collector now: {len(gc.get_objects())}; thresholds {gc.get_threshold()}")
        lines.append("```")
        return "\n".join(lines) + "\n"


def alternatives(runtime: Any, pipeline: Any, users: list[str], n: int) -> str:
    """Median ms of each stage's expensive call next to an alternative the stack already has.

    Same inputs for both sides (the candidates of a real ``pipeline.run``); read-only calls only.
    """
    import statistics

    from labcore.features.base import AFFINITY_SERVICE, RANKING_WITHOUT_EMBEDDING
    from labcore.features.feast import FeastServerFeatures
    from labcore.features.repo import open_serving_store
    from labcore.ranking.client import RankingClient
    from labcore.ranking.formula import Candidate

    stack, settings = runtime.stack, runtime.settings
    # The runtime's own servers, which the feed does not call in the embedded profile
    feature_server = FeastServerFeatures(settings.resolved_feature_server_url(), settings.feature_timeout_seconds)
    ranking_service = RankingClient(settings.resolved_ranking_url(), settings.ranking_timeout_seconds, seed=settings.seed)
    serving = open_serving_store(settings, redis_url=settings.redis_url)
    affinity_service = serving.get_feature_service(AFFINITY_SERVICE)
    timings: dict[str, list[float]] = defaultdict(list)

    def timed(name: str, fn: Any) -> Any:
        t0 = time.perf_counter()
        out = fn()
        timings[name].append((time.perf_counter() - t0) * 1000)
        return out

    def feast_in_process(user: str, keys: list[tuple[str, str]]) -> None:
        serving.get_online_features(
            features=RANKING_WITHOUT_EMBEDDING, entity_rows=[{"user_id": user, "post_id": p} for p, _ in keys]
        ).to_dict()
        authors = sorted({a for _, a in keys})
        serving.get_online_features(
            features=affinity_service, entity_rows=[{"user_id": user, "author_id": a} for a in authors]
        ).to_dict()

    # Which side the feed uses here: the settings decide (in-process unless told "server")
    reads = {"features": settings.resolved_feature_read(), "ranking": settings.resolved_ranking_read()}

    def used(kind: str, read: str) -> str:
        return "current" if reads[kind] == read else "not on the feed's path"

    k = settings.discovery_candidates
    for user in users[:n]:
        result = pipeline.run(user)
        now = time.time()
        survivors = [j for j in result.journeys if j.filtered is None]
        keys = [(j.post_id, j.author_id) for j in survivors]
        ids = [p for p, _ in keys]
        every = [j.post_id for j in result.journeys]
        interest = stack.interests.for_user(user, stack.store, stack.vectors)
        if interest is not None:
            timed("1 discovery: Qdrant local search with must_not author filter (current)",
                  lambda: stack.vectors.search(interest, k, exclude_author_ids={user}))
            timed("1 discovery: search k+50 without filter, drop own posts in Python",
                  lambda: [h for h in stack.vectors.search(interest, k + 50) if h.author_id != user][:k])
        since = now - settings.impression_window_hours * 3600
        timed("2 seen: DuckDB seen_since (current, + Redis set)", lambda: stack.impressions.seen_since(user, since, every))
        timed("2 seen: Redis recent-impressions set alone", lambda: stack.recent_impressions.seen_since(user, since, every))
        timed(f"3 features: Feast online store read in-process, planned once, 2 calls ({used('features', 'in-process')})",
              lambda: stack.features.ranking_features(user, keys))
        timed(f"3 features: Feast feature server over HTTP, 2 calls, no embeddings ({used('features', 'server')})",
              lambda: feature_server.ranking_features(user, keys))
        timed("3 features: Feast get_online_features (FeatureStore API), 2 calls", lambda: feast_in_process(user, keys))
        timed("3 features: Redis feature cache, one pipeline (with embeddings)",
              lambda: stack.feature_cache.ranking_features(user, keys))
        timed("3 embeddings: Qdrant local retrieve (for rows without one)", lambda: stack.vectors.vectors(ids))
        timed("3 embeddings: Redis feature cache HGET pipeline", lambda: stack.feature_cache.embeddings(ids))
        timed("3 hydrate: SQL get_posts (current)", lambda: stack.store.get_posts(ids))
        candidates = [Candidate(j.post_id, j.features) for j in survivors]
        timed(f"3 ranking: the scorer called in-process ({used('ranking', 'in-process')})",
              lambda: stack.ranker.rank(user, candidates, now))
        timed(f"3 ranking: ranking service over HTTP ({used('ranking', 'server')})",
              lambda: ranking_service.rank(user, candidates, now))
    lines = ["", f"### alternatives, median (p90) ms over {min(n, len(users))} users", "```"]
    for name, ms in timings.items():
        ms.sort()
        lines.append(f"{statistics.median(ms):8.2f} ({ms[int(0.9 * (len(ms) - 1))]:7.2f})  {name}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (utime + stime) of every OS thread of this process: tid -> (comm, seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            raw = (task / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return out


def thread_cpu_report(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], seconds: float,
                      requests: int) -> str:  # fmt: skip
    names = {t.native_id: t.name for t in threading.enumerate()}
    rows = []
    for tid, (comm, cpu) in after.items():
        used = cpu - before.get(tid, (comm, 0.0))[1]
        if used > 0:
            rows.append((used, names.get(tid, f"native thread '{comm}' {tid}")))
    rows.sort(reverse=True)
    total = sum(u for u, _ in rows)
    lines = ["", f"### CPU by OS thread during the sampling pass ({seconds:.1f} s wall, {requests} requests)", "```",
             f"{total:7.2f} s total = {1000 * total / requests:.1f} ms CPU per request, {total / seconds:.2f} cores"]
    lines += [f"{u:7.2f} s  {100 * u / total:5.1f}%  {name}" for u, name in rows[:20]]
    lines.append("```")
    return "\n".join(lines) + "\n"


def cprofile_report(top: int) -> str:
    out = io.StringIO()
    for name, profile in PROFILES.items():
        for sort, title in (("tottime", "self time"), ("cumulative", "cumulative")):
            buf = io.StringIO()
            stats = pstats.Stats(profile, stream=buf).strip_dirs().sort_stats(sort)
            stats.print_stats(top if sort == "tottime" else top * 3)
            body = buf.getvalue()
            body = body[body.find("   ncalls") :] if "   ncalls" in body else body
            out.write(f"\n### cProfile {name} — by {title}\n```\n{body.rstrip()}\n```\n")
    return out.getvalue()


def sampler_report(sampler: Sampler, top: int) -> str:
    out = io.StringIO()
    for stage, ticks in sampler.ticks.items():
        out.write(f"\n### samples {stage} ({ticks} ticks)\n")
        busy = ", ".join(f"{t} {100 * n / ticks:.0f}%" for t, n in sampler.busy[stage].most_common())
        out.write(f"\nthreads busy (share of ticks): {busy}\n")
        for title, table in (("innermost lab frame (labcore/services), else library", sampler.owner),
                             ("innermost frame", sampler.leaf)):  # fmt: skip
            out.write(f"\n{title}:\n```\n")
            for (thread, where), n in table[stage].most_common(top):
                out.write(f"{100 * n / ticks:5.1f}%  {n:6d}  [{thread}] {where}\n")
            out.write("```\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    global PROFILING
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=["tiny", "small", "medium", "large"], default="small")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="also write the report here")
    p.add_argument("--no-cprofile", action="store_true", help="only the sampling pass")
    p.add_argument("--alternatives", type=int, default=100, help="users for the alternatives timing (0: skip)")
    args = p.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    for key in FOREIGN_ENV:
        os.environ.pop(key, None)
    temp = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="feedlab-profile-")) if temp else args.data_dir.resolve()

    import labcore
    from labcore.lab.runtime import Runtime
    from labcore.settings import Settings

    settings = Settings(data_dir=data_dir, api_port=0, ranking_port=0, feature_port=0)
    runtime = None
    try:
        print(f"starting the runtime in-process in {data_dir}", file=sys.stderr, flush=True)
        runtime = Runtime(settings).start()
        with labcore.connect(runtime.settings) as lab:
            seeded = lab.seed(args.size, args.seed, progress=False)
            counts = lab.store.counts()
            print(f"  seeded: {seeded}; waiting for the pipeline", file=sys.stderr, flush=True)
            wait_for_pipeline(lab, counts, fresh="already_seeded" not in seeded, timeout=3600)
            users = follower_user_ids(lab)

        from labcore.feed.pipeline import FeedPipeline

        install_stage_hooks()
        pipeline = FeedPipeline(runtime.stack)
        rng = random.Random(args.seed)
        for _ in range(args.warmup):
            pipeline.run(rng.choice(users))
        # Every user read once more so no profiled request is a first read (mailbox rebuild).
        for user in users:
            pipeline.run(user)
        picks = [rng.choice(users) for _ in range(args.requests)]

        cprofile_seconds = 0.0
        if not args.no_cprofile:
            PROFILING = True
            t0 = time.perf_counter()
            for user in picks:
                pipeline.run(user)
            cprofile_seconds = time.perf_counter() - t0
            PROFILING = False

        import gc

        gc_watch = GcWatch()
        gc.callbacks.append(gc_watch)
        gc_watch.active = True
        sampler = Sampler(threading.get_ident())
        cpu_before = thread_cpu()
        sampler.start()
        stage_ms: dict[str, list[float]] = defaultdict(list)
        t0 = time.perf_counter()
        for user in picks:
            for name, ms in pipeline.run(user).stage_ms.items():
                stage_ms[name].append(ms)
        sampled_seconds = time.perf_counter() - t0
        cpu_after = thread_cpu()
        sampler.stop_event.set()
        sampler.join()
        gc_watch.active = False
        gc.callbacks.remove(gc_watch)

        alt = alternatives(runtime, pipeline, picks, args.alternatives) if args.alternatives else ""

        import statistics

        head = [
            f"# Feed request profile — {args.size} world, {len(picks)} requests (after {args.warmup} warm-up"
            f" and one read of each of {len(users)} users)",
            "",
            f"cProfile pass {cprofile_seconds:.1f} s; sampling pass {sampled_seconds:.1f} s"
            f" ({1000 * sampled_seconds / len(picks):.1f} ms/request).",
            "",
            "Stage medians during the sampling pass (ms): "
            + ", ".join(f"{n} {statistics.median(v):.2f}" for n, v in stage_ms.items()),
        ]
        report = (
            "\n".join(head) + "\n" + alt + thread_cpu_report(cpu_before, cpu_after, sampled_seconds, len(picks))
            + gc_watch.report(sampled_seconds) + sampler_report(sampler, args.top)
            + cprofile_report(args.top)
        )
        print(report)
        if args.out:
            args.out.write_text(report)
        return 0
    finally:
        if runtime is not None:
            runtime.stop()
        if temp:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

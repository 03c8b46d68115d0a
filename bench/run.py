"""``feedlab bench``: measure every hot path against its limit or baseline, in one run.

    feedlab bench                              # every case, medium world, docs/benchmarks.{md,json}
    feedlab bench --case fanout --case recall  # some cases (the report holds only those)
    feedlab bench --quick                      # tiny inputs, a smoke run: build/benchmarks/quick.*
    feedlab bench --size small                 # a smaller world for the runtime cases

In-process cases run first (fan-out, embedding, recall), then one ``feedlab up`` runtime is started
(or reused) for the runtime cases (feed latency, features, freshness, memory). Each case prints its
figures as it goes (stdout); a case that fails is reported as an error and the others still run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.report import CaseResult, finish_report, new_report, write_report

REPO = Path(__file__).resolve().parent.parent
IN_PROCESS = ("fanout", "embedding", "recall")
RUNTIME = ("feed", "features", "freshness", "memory")
CASES = ("fanout", "embedding", "feed", "features", "freshness", "recall", "memory")
TITLES = {
    "fanout": "1 · Fan-out", "embedding": "2 · Embedding worker", "feed": "3 · Feed latency",
    "features": "4 · Features", "freshness": "5 · Freshness", "recall": "6 · Discovery quality",
    "memory": "7 · Memory",
}  # fmt: skip


def say(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="feedlab bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return p.parse_args(argv)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``feedlab bench`` (shared with ``labcore.lab.cli``)."""
    p.add_argument("--case", action="append", choices=CASES, dest="cases", help="run only this case (repeatable)")
    p.add_argument("--size", choices=["tiny", "small", "medium", "large"], default="medium",
                   help="world for the runtime cases (default medium, as the issue asks; its first catch-up takes minutes)")
    p.add_argument("--quick", action="store_true", help="tiny inputs everywhere: a smoke run in a minute or two")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-dir", type=Path, default=None, help="runtime data dir (default /tmp/feedlab-bench-<size>, kept)")
    p.add_argument("--requests", type=int, default=500, help="measured GET /feed requests (case 3)")
    p.add_argument("--freshness-seconds", type=float, default=20.0)
    p.add_argument("--catchup-timeout", type=float, default=1800.0)
    p.add_argument("--md", type=Path, default=None, help="Markdown report (default docs/benchmarks.md; --quick: build/benchmarks/quick.md)")
    p.add_argument("--json", type=Path, default=None, help="JSON report (default docs/benchmarks.json; --quick: build/benchmarks/quick.json)")
    # fmt: skip


def _run_case(name: str, fn: Callable[[], CaseResult]) -> CaseResult:
    say(f"\n== {TITLES[name]} ==")
    started = time.perf_counter()
    try:
        result = fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one broken case must not lose the others' figures
        traceback.print_exc()
        result = CaseResult(name=name, title=TITLES[name], headline="failed", error=f"{type(exc).__name__}: {exc}")
        result.seconds = time.perf_counter() - started
    verdict = "error" if result.error else ("no target" if result.met is None else ("met" if result.met else "MISSED"))
    ratio = f"; ratio {result.ratio:.3f} ({result.ratio_label})" if result.ratio is not None else ""
    say(f"-> {result.headline}{ratio}; {verdict} [{result.seconds:.1f}s]")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(args, command="python -m bench.run " + shlex.join(argv if argv is not None else sys.argv[1:]))


def run(args: argparse.Namespace, *, command: str) -> int:
    """Run the chosen cases and write both reports; exit status 1 if a case failed."""
    wanted = args.cases or list(CASES)
    quick = args.quick
    md = args.md or REPO / ("build/benchmarks/quick.md" if quick else "docs/benchmarks.md")
    js = args.json or REPO / ("build/benchmarks/quick.json" if quick else "docs/benchmarks.json")
    size = "tiny" if quick and args.size == "small" else args.size
    report = new_report(size=size, quick=quick, command=command.strip())
    report["machine"]["shared_note"] = (
        "shared machine: other work runs meanwhile; compare ratios taken in the same run, not absolute times"
    )
    load = report["machine"]["loadavg_start"]
    say(f"feedlab bench: cases {', '.join(wanted)}; world {size}{' (quick)' if quick else ''}; load average {load}")

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    results: dict[str, CaseResult] = {}
    from bench.cases import embedding, fanout, recall

    in_process: dict[str, Callable[[], CaseResult]] = {
        "fanout": lambda: fanout.run(quick=quick, say=say),
        "embedding": lambda: embedding.run(quick=quick, say=say),
        "recall": lambda: recall.run(quick=quick, say=say),
    }
    session = None
    try:
        for name in [n for n in wanted if n in IN_PROCESS]:
            results[name] = _run_case(name, in_process[name])
        runtime_cases = [n for n in wanted if n in RUNTIME]
        if runtime_cases:
            from bench.cases import features, feed, memory
            from bench.session import close_session, open_session

            say(f"\n== runtime: the {size} world ==")
            try:
                session = open_session(size, args.seed, args.data_dir, catchup_timeout=args.catchup_timeout, say=say)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                for name in runtime_cases:
                    results[name] = CaseResult(name=name, title=TITLES[name], headline="no runtime",
                                               error=f"runtime: {type(exc).__name__}: {exc}")  # fmt: skip
            else:
                report["world"] = session.world
                redis_pid = _redis_pid(session.data_dir)
                runtime_fns: dict[str, Callable[[], CaseResult]] = {
                    "feed": lambda: feed.run(session, requests=args.requests, quick=quick, say=say),
                    "features": lambda: features.run(session, quick=quick, say=say),
                    "freshness": lambda: _freshness_apart(args, quick),
                    "memory": lambda: memory.run(session.pid, redis_pid=redis_pid, world=size, quick=quick, say=say),
                }
                # Memory last: its peak then covers the other cases' load on the runtime.
                for name in [n for n in RUNTIME if n in runtime_cases]:
                    results[name] = _run_case(name, runtime_fns[name])
    except KeyboardInterrupt:
        say("interrupted: writing what was measured so far")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if session is not None:
            from bench.session import close_session

            close_session(session, say)
    ordered = [results[n] for n in CASES if n in results]
    _cross_notes(results)
    if size != "medium" and any(n in results for n in RUNTIME):
        report["world"]["note"] = (
            f"the targets are for the medium world (the default); this run used {size}."
        )
    finish_report(report, ordered)
    write_report(report, md, js)
    machine = report["machine"]
    say(f"\nwrote {md} and {js}; load average at start {machine['loadavg_start']}, at end {machine['loadavg_end']}")
    return 1 if any(r.error for r in ordered) else 0


def _freshness_apart(args: argparse.Namespace, quick: bool) -> CaseResult:
    """Case 5 on its own throwaway runtime (the tiny world in a temp dir).

    It writes thousands of posts and hundreds of users; on the reused world they would pile up run
    after run and change what the feed case measures. Its figures do not depend on the world: the
    case makes its own authors and followers.
    """
    import tempfile

    from bench.cases import freshness
    from bench.session import close_session, open_session

    with tempfile.TemporaryDirectory(prefix="feedlab-bench-fresh-") as tmp:
        session = None
        try:
            session = open_session("tiny", args.seed, Path(tmp), catchup_timeout=args.catchup_timeout, say=say)
            return freshness.run(session, duration=args.freshness_seconds, quick=quick, say=say)
        finally:
            close_session(session, say)


def _cross_notes(results: dict[str, CaseResult]) -> None:
    """A missed feed target, explained with what the features case measured in the same run."""
    feed, features = results.get("feed"), results.get("features")
    if feed is None or features is None or feed.met is not False or features.error:
        return
    med = features.figures["median_ms"]
    stage3 = feed.figures["stage_p50_ms"].get("stage3_feature_fetch")
    feed.notes.append(
        f"What would fix it, measured in case 4: for 150 candidates the feature server took {med['server']:.1f} ms,"
        f" Feast in-process {med['feast_in_process']:.1f} ms and the Redis feature cache {med['redis_cache']:.1f} ms"
        f" (stage3_feature_fetch p50 here: {stage3:.1f} ms, which also reads the embeddings from the vector"
        " store). Reading features from the cache the lab already writes alongside Feast, rather than through"
        " the feature server's HTTP + JSON, would take most of that stage off every request."
    )


def _redis_pid(data_dir: Path) -> int | None:
    try:
        return json.loads((data_dir / "runtime.json").read_text()).get("redis_pid")
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())

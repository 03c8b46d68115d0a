"""``feedlab bench``: measure every hot path against its limit or baseline, in one run.

    feedlab bench                              # every default case, medium world, docs/benchmarks.{md,json}
    feedlab bench --case large                 # the large world alone; updates only its section
    feedlab bench --case fanout --case recall  # some cases (the report holds only those, plus large)
    feedlab bench --quick                      # tiny inputs, a smoke run: build/benchmarks/quick.*
    feedlab bench --size small                 # a smaller world for the runtime cases

In-process cases run first (fan-out, recall), then freshness on its own tiny runtime, then one
``feedlab up`` runtime is started for the runtime cases: with ``catchup`` on a wiped data dir, whose
seeding and catch-up that case measures; without it, on the kept world (feed latency, 8 clients,
features, memory). ``large``
(not in the default run: it takes long) starts its own runtime on the large world. Each case
prints its figures as it goes (stdout); a case that fails is reported as an error and the others
still run.
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
from typing import TYPE_CHECKING

from bench.report import CaseResult, finish_report, new_report, write_report

if TYPE_CHECKING:
    from bench.session import Session

REPO = Path(__file__).resolve().parent.parent
IN_PROCESS = ("fanout", "recall")
RUNTIME = ("catchup", "feed", "concurrency", "features", "memory")
CASES = ("fanout", "catchup", "feed", "concurrency", "features", "freshness", "recall", "memory", "large")
DEFAULT_CASES = tuple(c for c in CASES if c != "large")  # large takes long: its own run, kept across runs
KEPT_ACROSS_RUNS = ("large",)
TITLES = {
    "fanout": "1 · Fan-out", "catchup": "2 · Catch-up", "feed": "3 · Feed latency",
    "concurrency": "4 · Feed, 8 clients", "features": "5 · Features", "freshness": "6 · Freshness",
    "recall": "7 · Discovery quality", "memory": "8 · Memory", "large": "9 · Large world",
}  # fmt: skip


def say(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="feedlab bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return p.parse_args(argv)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``feedlab bench`` (shared with ``labcore.lab.cli``)."""
    p.add_argument("--case", action="append", choices=CASES, dest="cases",
                   help="run only this case (repeatable); 'large' is never in the default run")
    p.add_argument("--size", choices=["tiny", "small", "medium"], default=None,
                   help="world for the runtime cases (default medium, as the issue asks; --quick: tiny)")
    p.add_argument("--quick", action="store_true", help="tiny inputs everywhere: a smoke run in a minute or two")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data-dir", type=Path, default=None, help="runtime data dir (default /tmp/feedlab-bench-<size>, kept)")
    p.add_argument("--requests", type=int, default=500, help="measured GET /feed requests (case 3)")
    p.add_argument("--concurrent-requests", type=int, default=800, help="GET /feed requests over 8 clients (case 4)")
    p.add_argument("--large-data-dir", type=Path, default=None, help="data dir of the large case (default /tmp/feedlab-bench-large, wiped)")
    p.add_argument("--freshness-seconds", type=float, default=20.0)
    p.add_argument("--catchup-timeout", type=float, default=3600.0)
    p.add_argument("--merge", action="store_true",
                   help="keep the existing report's cases this run does not measure, replacing the others "
                        "(--case large does this by itself)")
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
    wanted = args.cases or list(DEFAULT_CASES)
    quick = args.quick
    md = args.md or REPO / ("build/benchmarks/quick.md" if quick else "docs/benchmarks.md")
    js = args.json or REPO / ("build/benchmarks/quick.json" if quick else "docs/benchmarks.json")
    size = args.size or ("tiny" if quick else "medium")
    size = "tiny" if quick and size == "small" else size
    report = new_report(size=size, quick=quick, command=command.strip())
    report["machine"]["shared_note"] = (
        "shared machine: other work runs meanwhile; compare ratios taken in the same run, not absolute times"
    )
    load = report["machine"]["loadavg_start"]
    say(f"feedlab bench: cases {', '.join(wanted)}; world {size}{' (quick)' if quick else ''}; load average {load}")

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm)
    results: dict[str, CaseResult] = {}
    from bench.cases import fanout, recall

    in_process: dict[str, Callable[[], CaseResult]] = {
        "fanout": lambda: fanout.run(quick=quick, say=say),
        "recall": lambda: recall.run(quick=quick, say=say),
    }
    session = None
    try:
        for name in [n for n in wanted if n in IN_PROCESS]:
            results[name] = _run_case(name, in_process[name])
        if "freshness" in wanted:  # on its own runtime, before the world's starts (``_freshness_apart``)
            results["freshness"] = _run_case("freshness", lambda: _freshness_apart(args, quick))
        runtime_cases = [n for n in RUNTIME if n in wanted]
        if runtime_cases:
            session = _runtime_cases(args, size, quick, runtime_cases, results, report)
        if "large" in wanted:
            from bench.cases import large

            results["large"] = _run_case("large", lambda: large.run(
                seed=args.seed, data_dir=args.large_data_dir, catchup_timeout=max(args.catchup_timeout, 7200.0),
                quick=quick, say=say,
            ))  # fmt: skip
    except KeyboardInterrupt:
        say("interrupted: writing what was measured so far")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the runtime's `down` finish
        try:
            if session is not None:
                from bench.session import close_session

                close_session(session, say)
        finally:
            # Restored: an ignored SIGTERM is inherited by every process this one starts later (in
            # pytest, every engine child a later test stops would sit out its SIGTERM grace).
            signal.signal(signal.SIGTERM, previous_sigterm)
    _cross_notes(results)
    if size != "medium" and any(n in results for n in RUNTIME):
        report["world"]["note"] = (
            f"the targets are for the medium world (the default); this run used {size}."
        )
    ordered = [results[n] for n in CASES if n in results]
    finish_report(report, ordered)
    for case in report["cases"]:  # each case says when and under what load it ran (kept ones keep theirs)
        case.setdefault("context", {"generated_at": report["generated_at"], "command": report["command"],
                                    "cpu_model": report["machine"].get("cpu_model"),
                                    "loadavg_start": report["machine"]["loadavg_start"],
                                    "loadavg_end": report["machine"]["loadavg_end"]})  # fmt: skip
    merge = getattr(args, "merge", False) or set(wanted) <= set(KEPT_ACROSS_RUNS)
    report, carried = combine_with_previous(report, js, merge=merge)
    write_report(report, md, js)
    machine = report["machine"]
    say(f"\nwrote {md} and {js}; load average at start {machine['loadavg_start']}, at end {machine['loadavg_end']}"
        + (f"; kept from the previous report: {', '.join(carried)}" if carried else ""))  # fmt: skip
    return 1 if any(r.error for r in ordered) else 0


def _runtime_cases(
    args: argparse.Namespace, size: str, quick: bool, names: list[str], results: dict[str, CaseResult],
    report: dict,
) -> Session | None:  # fmt: skip
    """One runtime for the runtime cases; with ``catchup``, on a wiped data dir whose seeding it measures."""
    from bench.cases import catchup, concurrency, features, feed, memory
    from bench.session import settle, start_session

    say(f"\n== runtime: the {size} world ==")
    session = None
    try:
        session = start_session(size, args.seed, args.data_dir, fresh="catchup" in names, say=say)
        if "catchup" in names:
            results["catchup"] = _run_case(
                "catchup", lambda: catchup.run(session, timeout=args.catchup_timeout, quick=quick, say=say)
            )
        if results.get("catchup") is None or results["catchup"].error:
            settle(session, catchup_timeout=args.catchup_timeout, say=say)  # seed (if needed) and wait
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        for name in names:
            if name not in results:
                results[name] = CaseResult(name=name, title=TITLES[name], headline="no runtime",
                                           error=f"runtime: {type(exc).__name__}: {exc}")  # fmt: skip
        return session
    report["world"] = session.world
    redis_pid = _redis_pid(session.data_dir)
    runtime_fns: dict[str, Callable[[], CaseResult]] = {
        "feed": lambda: feed.run(session, requests=args.requests, quick=quick, say=say),
        "concurrency": lambda: concurrency.run(session, requests=args.concurrent_requests, quick=quick, say=say),
        "features": lambda: features.run(session, quick=quick, say=say),
        "memory": lambda: memory.run(session.pid, redis_pid=redis_pid, world=size, quick=quick, say=say),
    }
    # Memory last: its peak then covers the other cases' load on the runtime.
    for name in [n for n in RUNTIME if n in names and n != "catchup"]:
        results[name] = _run_case(name, runtime_fns[name])
    return session


def combine_with_previous(report: dict, json_path: Path, *, merge: bool) -> tuple[dict, list[str]]:
    """The report to write, and the names of the cases kept from the one at ``json_path``.

    A run that measured the world heads the report (its date, machine, world); the previous report's
    ``large`` section stays, and with ``merge`` every case this run did not measure, each saying when
    and on what machine it ran. A merge that measured no world (``--case large`` alone) changes only
    its own sections of the previous report.
    """
    if merge and not report["world"] and (merged := merge_into_previous(report, json_path)) is not None:
        return merged, []
    return report, carry_over(report, json_path, CASES if merge else KEPT_ACROSS_RUNS)


def merge_into_previous(report: dict, json_path: Path) -> dict | None:
    """The report at ``json_path`` with this run's cases put in (replacing theirs); None if there is none."""
    try:
        previous = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return None
    if bool(previous.get("quick")) != bool(report.get("quick")) or not isinstance(previous.get("cases"), list):
        return None
    fresh = {c["name"]: c for c in report["cases"]}
    previous["cases"] = [c for c in previous["cases"] if c.get("name") not in fresh] + list(fresh.values())
    order = {n: i for i, n in enumerate(CASES)}
    previous["cases"].sort(key=lambda c: order.get(c["name"], len(order)))
    return previous


def carry_over(report: dict, json_path: Path, names: tuple[str, ...]) -> list[str]:
    """Copy cases ``names`` that this run did not measure from the report already at ``json_path``.

    ``large`` takes long and has its own run (``feedlab bench --case large``): a default run keeps its
    last section, which carries its own ``context`` (date, command, load average).
    """
    have = {c["name"] for c in report["cases"]}
    try:
        previous = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return []
    if bool(previous.get("quick")) != bool(report.get("quick")):
        return []
    carried = []
    for case in previous.get("cases", []):
        if case.get("name") in names and case["name"] not in have:
            case.setdefault("context", {"generated_at": previous.get("generated_at"), "command": previous.get("command"),
                                        "cpu_model": (previous.get("machine") or {}).get("cpu_model")})  # fmt: skip
            report["cases"].append(case)
            carried.append(case["name"])
    order = {n: i for i, n in enumerate(CASES)}
    report["cases"].sort(key=lambda c: order.get(c["name"], len(order)))
    return carried


def _freshness_apart(args: argparse.Namespace, quick: bool) -> CaseResult:
    """Case 6 on its own throwaway runtime (the tiny world in a temp dir), with no other runtime up.

    It writes thousands of posts and hundreds of users; on the reused world they would pile up run
    after run and change what the feed case measures. Its figures do not depend on the world: the
    case makes its own authors and followers. It runs before the world's runtime starts: run beside
    that runtime (1.5 GB, its background index builds and batches) its p99 swung from 0.14 to 4.3 s
    between runs on a 2-core machine; alone it gave 35-38 ms four runs in a row.
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
    """A missed feed target, put next to what the features case measured in the same run."""
    feed, features = results.get("feed"), results.get("features")
    if feed is None or features is None or feed.met is not False or features.error or feed.error:
        return
    med = features.figures["median_ms"]
    stage3 = feed.figures["stage_p50_ms"].get("stage3_feature_fetch")
    feed.notes.append(
        f"Case 5 in the same run, for 150 candidates: Feast in-process (the feed's read) {med['feast_in_process']:.1f} ms,"
        f" the feature server {med['server']:.1f} ms, the Redis cache {med['redis_cache']:.1f} ms"
        f" (stage3_feature_fetch p50 here: {stage3:.1f} ms, which also reads the embeddings from the vector store)."
    )


def _redis_pid(data_dir: Path) -> int | None:
    try:
        return json.loads((data_dir / "runtime.json").read_text()).get("redis_pid")
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())

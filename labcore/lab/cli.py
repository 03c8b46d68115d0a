"""``feedlab``: start, stop, inspect and seed the lab's stack.

    feedlab up [--profile embedded|compose] [--foreground]
    feedlab down [--profile embedded|compose]
    feedlab status [--profile embedded|compose]
    feedlab seed --size tiny|small|medium|large [--no-wait]
    feedlab check [NN ...]
    feedlab grade [NN ...] [--solutions]
    feedlab bench [--case NAME ...] [--size small] [--quick]
    feedlab train-ranker [--world tiny] [--sessions 360] [--ab-sessions 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from labcore.engines.process import command_line, stop_orphan
from labcore.errors import LabError
from labcore.lab.client import RuntimeInfo
from labcore.settings import Settings

COMPOSE_FILE = Path("compose/docker-compose.yml")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed runtime nobody reaped (a container whose PID 1 does not reap) is a zombie: signal 0
    # still reaches it, but it is dead.
    return _proc_field(pid, "stat").rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _proc_field(pid: int, name: str) -> str:
    """``/proc/<pid>/<name>`` as text ("" where there is no /proc or the process is gone)."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _stop_orphaned_redis(runtime_file: Path) -> None:
    """Stop the redis-server a SIGKILLed runtime left running on its data dir.

    The runtime's child outlives a SIGKILL; left alone it would keep the data dir's append-only file
    open while the next runtime starts a second server on the same files (and it would leak).
    Not ``labcore.engines.process.stop_orphan``: redis-server rewrites its own command line
    ("redis-server 127.0.0.1:port"), so the recorded-argv check that guards the other engines never
    matches it; the pid from ``runtime.json`` plus the program's name stands in.
    """
    try:
        pid = int(json.loads(runtime_file.read_text()).get("redis_pid") or 0)
    except (OSError, ValueError, TypeError):
        return
    # /proc's raw cmdline where there is one; ps's where there is none (macOS)
    if pid and _alive(pid) and "redis-server" in (_proc_field(pid, "cmdline") or command_line(pid)):
        os.kill(pid, signal.SIGTERM)  # redis flushes its append-only file and exits
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _health(api_url: str) -> dict | None:
    try:
        response = httpx.get(f"{api_url}/health", timeout=2.0)
        return response.json() if response.status_code == 200 else None
    except httpx.HTTPError:
        return None


def _running(settings: Settings) -> RuntimeInfo | None:
    try:
        info = RuntimeInfo.read(settings.runtime_file)
    except LabError:
        return None
    if info.profile == "embedded" and not _alive(info.pid):
        _stop_orphaned_redis(settings.runtime_file)
        stop_orphan(settings.data_dir / "seaweedfs" / "seaweedfs.pid")  # its weed mini, likewise
        settings.runtime_file.unlink(missing_ok=True)  # left behind by a killed runtime
        return None
    return info


# --- commands -------------------------------------------------------------------------------------
def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    if args.profile == "compose":
        return _compose_up()
    info = _running(settings)
    if info is not None:
        print(f"already running (pid {info.pid}): api {info.api_url}")
        return 0
    from labcore import extensions

    extensions.check(settings)  # a mistyped FEEDLAB_<POINT> fails here, in words, not in the log
    if args.foreground:
        from labcore.lab.runtime import Runtime

        Runtime(settings).start().serve_forever()
        return 0

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.data_dir / "runtime.log"
    # One BLAS thread: the runtime's numpy work is tiny per call, and OpenBLAS's second thread
    # spinning after each call cost ~40 % of the runtime's CPU while serving (bench/profile_feed.py).
    env = os.environ | {"OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "labcore.lab.runtime"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the shell that ran `feedlab up`
        )
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(f"the runtime exited with {process.returncode}; see {log_path}", file=sys.stderr)
            return 1
        info = _running(settings)
        if info is not None and info.pid == process.pid and _health(info.api_url):
            print(f"feed lab is up (pid {info.pid})")
            print(f"  api      {info.api_url}   (docs: {info.api_url}/docs)")
            print(f"  redis    {info.redis_url}")
            print(f"  sql      {info.sql_url}")
            print(f"  logs     {log_path}")
            return 0
        time.sleep(0.2)
    process.terminate()
    print(f"the runtime did not become healthy in {args.timeout}s; see {log_path}", file=sys.stderr)
    return 1


def _compose(*args: str) -> subprocess.CompletedProcess[bytes] | int:
    """``docker compose -f compose/docker-compose.yml <args>``, or an exit code saying what is missing.

    Docker, a running engine, the compose plugin and the compose file are checked first, each with a
    message that says what to do instead.
    """
    docker = shutil.which("docker")
    if docker is None:
        print("the compose profile needs Docker: `docker` is not on PATH", file=sys.stderr)
        return 2
    probe = subprocess.run([docker, "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(
            "the compose profile needs a running Docker engine, and none answers here:\n"
            f"  {probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else 'docker info failed'}\n"
            "use the embedded profile (`feedlab up`) or start Docker.",
            file=sys.stderr,
        )
        return 2
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        print("the compose profile needs Docker Compose v2 (`docker compose`): install the plugin", file=sys.stderr)
        return 2
    if not COMPOSE_FILE.exists():
        print(f"{COMPOSE_FILE} not found: run from the repository root", file=sys.stderr)
        return 2
    return subprocess.run([docker, "compose", "-f", str(COMPOSE_FILE), *args])


def _compose_up() -> int:
    """``docker compose up -d --wait``: every engine, the init jobs and the seed job, in order.

    The compose file itself seeds the world (its ``seed`` job), so when this returns 0 the stack
    is healthy and loaded.
    """
    up = _compose("up", "-d", "--wait")
    if isinstance(up, int):
        return up
    if up.returncode != 0:
        print(f"the stack did not come up; see `docker compose -f {COMPOSE_FILE} ps` and `logs`", file=sys.stderr)
        return up.returncode
    print("feed lab (compose) is up: api http://localhost:8000/docs, JupyterLab http://localhost:8888/lab")
    return 0


def _compose_down() -> int:
    """``docker compose down``: stops and removes the containers; the named volumes (data) stay."""
    down = _compose("down")
    return down if isinstance(down, int) else down.returncode


def _compose_status() -> int:
    """``docker compose ps``, then the API's own health as seen from this machine."""
    ps = _compose("ps")
    if isinstance(ps, int):
        return ps
    health = _health("http://localhost:8000")
    print(f"api http://localhost:8000: {health['status'] if health else 'not answering'}")
    for group, figures in (health or {}).get("backlog", {}).items():
        print(f"  backlog {group:<18} {_backlog_line(figures)}")
    return 0 if ps.returncode == 0 and health is not None and health["status"] in ("ok", "catching_up") else 1


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    if args.profile == "compose":
        return _compose_down()
    info = _running(settings)
    if info is None:
        print("not running")
        return 0
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(info.pid):
        print(f"pid {info.pid} did not stop in 30s; killing it", file=sys.stderr)
        os.kill(info.pid, signal.SIGKILL)
    settings.runtime_file.unlink(missing_ok=True)
    print("stopped")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    if args.profile == "compose":
        return _compose_status()
    info = _running(settings)
    if info is None:
        print("not running: start it with `feedlab up`")
        return 1
    health = _health(info.api_url)
    if health is None:
        print(f"runtime pid {info.pid} is not answering on {info.api_url}")
        return 1
    print(f"{health['status']}  profile={health['profile']}  api={info.api_url}")
    for name, state in health["components"].items():
        print(f"  {name:<14} {state}")
    for name, report in health.get("workers", {}).items():
        print(f"  {name:<14} {json.dumps(report)}")
    print(f"  outbox backlog {health.get('outbox_backlog')}")
    for group, figures in health.get("backlog", {}).items():
        print(f"  backlog {group:<18} {_backlog_line(figures)}")
    # catching_up is a healthy stack with work to do (right after a seed): not a failure
    return 0 if health["status"] in ("ok", "catching_up") else 1


def _backlog_line(figures: dict) -> str:
    """``1234 events on new-posts, 56.7/s, ready in ~22 s`` (or what is not known yet)."""
    if figures.get("backlog") is None:
        return f"unknown (the event log did not answer) on {figures.get('topic')}"
    line = f"{figures['backlog']} events on {figures.get('topic')}"
    if figures["backlog"] == 0:
        return line + ", caught up"
    if figures.get("rate_per_second"):
        line += f", {figures['rate_per_second']:.1f}/s"
    eta = figures.get("eta_seconds")
    return line + (f", ready in ~{eta:.0f} s" if eta is not None else ", ETA not known yet (ask again)")


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from labcore.lab.client import connect

    if _running(settings) is None:
        print("not running: start it with `feedlab up` first", file=sys.stderr)
        return 1
    with connect(settings) as lab:
        counts = lab.seed(args.size, args.seed, progress=not args.quiet)
        if "already_seeded" in counts:
            print(f"the {args.size} world is already loaded")
        else:
            print("seeded " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        if args.no_wait:
            return 0
        # The workers now embed and fan out the world: return once it is ready (discovery works).
        started = time.monotonic()
        try:
            health = lab.wait_until_ready(progress=not args.quiet)
        except TimeoutError as exc:
            print(f"the world is not ready: {exc}", file=sys.stderr)
            return 1
    if not args.quiet:
        print(f"ready: every event handled ({time.monotonic() - started:.1f} s), status {health['status']}")
    return 0


def cmd_check(args: argparse.Namespace, _settings: Settings) -> int:
    from labcore.lab.notebook_check import CI_PARAMETERS, NotebookFailed, check, course

    notebooks = course(Path(args.notebooks))
    if args.only:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(prefix) for prefix in args.only)]
    if not notebooks:
        print(f"no numbered notebooks in {args.notebooks}", file=sys.stderr)
        return 1
    try:
        executed = check(notebooks, Path(args.out), CI_PARAMETERS | {"WORLD": args.world})
    except NotebookFailed as failure:
        print(f"FAILED {failure}", file=sys.stderr)
        print(f"(the executed copy is in {args.out}/{failure.notebook})", file=sys.stderr)
        return 1
    print(f"{len(executed)} notebooks passed; executed copies in {args.out}/")
    return 0


def cmd_grade(args: argparse.Namespace, _settings: Settings) -> int:
    from labcore.lab.grading import grade, render

    report = grade(args.only, solutions=args.solutions, out=Path(args.out))
    print(render(report))
    return 0 if report.passed else 1


def cmd_train_ranker(args: argparse.Namespace, settings: Settings) -> int:
    from labcore.lab.client import connect
    from labcore.lab.learning_loop import LoopConfig, run_loop

    if _running(settings) is None:
        print("not running: start it with `feedlab up` first", file=sys.stderr)
        return 1
    config = LoopConfig(
        world=args.world, seed=settings.seed if args.seed is None else args.seed, sessions=args.sessions,
        exploration_share=args.exploration, ab_sessions=args.ab_sessions, version=args.version,
    )  # fmt: skip
    with connect(settings) as lab:
        report = run_loop(lab, config)
    print("\noffline metrics on the held-out (later) impressions:")
    print(report.result.table.round(4).to_string())
    print(f"\nregistered {report.version}; serve it with FEEDLAB_RANKING_MODEL={report.version} (or A/B it with")
    print(f"FEEDLAB_RANKING_TREATMENT={report.version}) and restart, or lab.configure_serving(...) from a notebook")
    if report.ab is not None:
        print("\nA/B, like rate per impression by arm:")
        print(report.ab.round(4).to_string())
    return 0


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _bench_module() -> object | None:
    """``bench.run`` from the repository checkout (``bench/`` is not part of the installed package)."""
    repo = _repo_root()
    if not (repo / "bench" / "run.py").is_file():
        return None
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    import bench.run  # stdlib-only at import time: cheap, no side effects

    return bench.run


def cmd_bench(args: argparse.Namespace, _settings: Settings) -> int:
    bench_run = _bench_module()
    if bench_run is None:
        print(f"feedlab bench needs the repository checkout (no bench/ in {_repo_root()})", file=sys.stderr)
        return 2
    return bench_run.run(args, command="feedlab bench " + " ".join(sys.argv[2:]))  # type: ignore[attr-defined]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedlab", description="Run the Social Feed Lab stack.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the stack")
    up.add_argument("--profile", choices=["embedded", "compose"], default=None)
    up.add_argument("--foreground", action="store_true", help="run in this process (Ctrl-C stops)")
    up.add_argument("--timeout", type=float, default=120.0)
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="stop the stack")
    down.add_argument("--profile", choices=["embedded", "compose"], default="embedded")
    down.set_defaults(func=cmd_down)
    status = commands.add_parser("status", help="health of every component")
    status.add_argument("--profile", choices=["embedded", "compose"], default="embedded")
    status.set_defaults(func=cmd_status)

    seed = commands.add_parser("seed", help="load a deterministic synthetic world")
    seed.add_argument("--size", choices=["tiny", "small", "medium", "large"], default="small")
    seed.add_argument("--seed", type=int, default=None)
    seed.add_argument("--quiet", action="store_true")
    seed.add_argument(
        "--no-wait", action="store_true", help="return once written, without waiting for the workers to catch up"
    )
    seed.set_defaults(func=cmd_seed)

    check = commands.add_parser("check", help="run every notebook against a fresh stack (papermill)")
    check.add_argument("only", nargs="*", help="notebook number prefixes, e.g. 00 03 (default: all)")
    check.add_argument("--notebooks", default="notebooks")
    check.add_argument("--out", default="build/notebooks")
    check.add_argument("--world", choices=["tiny", "small"], default="tiny")
    check.set_defaults(func=cmd_check)

    grade = commands.add_parser("grade", help="run the exercises' tests and print the score table")
    grade.add_argument("only", nargs="*", help="exercise numbers, e.g. 01 07 (default: all)")
    grade.add_argument("--solutions", action="store_true", help="grade the reference solutions, not the starters")
    grade.add_argument("--out", default="build/grades", help="where grades.json and junit.xml go")
    grade.set_defaults(func=cmd_grade)

    trainer = commands.add_parser(
        "train-ranker", help="simulate readers, train a ranker on their logs, register it (optionally A/B it)"
    )
    trainer.add_argument(
        "--world", choices=["tiny", "small", "medium", "large"], default=None,
        help="the seeded world to simulate (default: the one the stack holds, else tiny)",
    )  # fmt: skip
    trainer.add_argument("--seed", type=int, default=None)
    trainer.add_argument(
        "--sessions", type=int, default=None,
        help="simulated sessions to learn from (default: 360 on tiny, 1200 on small and larger)",
    )  # fmt: skip
    trainer.add_argument("--exploration", type=float, default=0.15, help="exploration share while simulating")
    trainer.add_argument("--ab-sessions", type=int, default=0, help="then A/B the new model for this many sessions")
    trainer.add_argument("--version", default=None, help="model version name (default: the next learned-vN)")
    trainer.set_defaults(func=cmd_train_ranker)

    bench = commands.add_parser("bench", help="measure the hot paths against their limits (writes docs/benchmarks.*)")
    bench_run = _bench_module()
    if bench_run is not None:
        bench_run.add_arguments(bench)  # type: ignore[attr-defined]
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    if getattr(args, "profile", None):
        settings = settings.model_copy(update={"profile": args.profile})
    try:
        return args.func(args, settings)
    except LabError as exc:
        print(f"feedlab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

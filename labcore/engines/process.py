"""The one child-process mechanism every engine uses.

An engine is a command started in its own session (so a stop reaches every process it forked), its
output appended to ``<run_dir>/<name>.log``, its pid and exact argv recorded in ``<run_dir>/<name>.pid``.
``start`` returns once a readiness probe passes, or raises ``BackendUnavailable`` naming the engine
and the tail of its log. ``stop`` sends SIGTERM, then SIGKILL after a grace period.

The pid file lets a later ``up`` (or ``down`` from another process) stop a child left behind by a
crashed parent — but only after ``/proc/<pid>/cmdline`` proves the pid still runs the recorded argv,
so a recycled pid belonging to someone else is never signalled. Where there is no ``/proc`` (macOS, where
`make lab` runs redis-server and weed too), ``ps`` answers the same questions: a process's command line,
and whether its group still has a live member.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from labcore.errors import BackendUnavailable

Probe = Callable[[], bool]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it).

    Another process may take it before ours binds it. For a server of this process, hold the port
    from the start instead (``bind_port``).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def bind_port(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a port the OS picks), held until a server in this
    process takes it over (``uvicorn.Server.run(sockets=[...])``). Nobody else can take the port in
    between, as they can a ``free_port`` number; a client that connects early waits in the backlog."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def port_open(port: int, host: str = "127.0.0.1") -> Probe:
    """Ready when something accepts TCP connections on ``host:port``."""

    def probe() -> bool:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            return False

    return probe


def http_ok(url: str) -> Probe:
    """Ready when ``GET url`` answers 200."""

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra``: what an engine child runs with."""
    return os.environ | dict(extra)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _has_proc() -> bool:
    return Path("/proc").is_dir()


def _ps(*args: str) -> list[str]:
    """``ps``'s output lines, headers off ([] when ps fails or names no process)."""
    try:
        result = subprocess.run(["ps", "-ww", *args], check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return result.stdout.splitlines() if result.returncode == 0 else []


def _cmdline(pid: int) -> list[str] | None:
    """The argv ``pid`` runs; None when it is gone or a zombie. Without /proc (macOS) from ``ps``,
    which joins the arguments with spaces: the words come back split on single spaces."""
    if not _has_proc():
        for line in _ps("-o", "stat=", "-o", "command=", "-p", str(pid)):
            state, _, command = line.strip().partition(" ")
            return None if state.startswith("Z") or not command.strip() else command.strip().split(" ")
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")[:-1] if raw else None


def command_line(pid: int) -> str:
    """The command ``pid`` runs, its arguments joined by spaces ("" when it is gone or a zombie)."""
    return " ".join(_cmdline(pid) or [])


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child; ChildProcessError when it is not (an orphan's parent is init).
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        if _cmdline(pid) is None:
            return True
        time.sleep(0.05)
    return False


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the child leads its own session, so its pid is its group id
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies waiting for a reaper do not count)."""
    if not _has_proc():
        for line in _ps("-A", "-o", "pgid=", "-o", "stat="):
            group, _, state = line.strip().partition(" ")
            if group == str(pgid) and not state.strip().startswith("Z"):
                return True
        return False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state != "Z":
            return True
    return False


def _wait_group_gone(pid: int, seconds: float) -> bool:
    """The leader reaped and every process it forked gone (they hold the ports), within ``seconds``."""
    deadline = time.monotonic() + seconds
    if not _wait_gone(pid, seconds):
        return False
    while _group_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def terminate(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``; SIGKILL it if still there after ``grace`` seconds."""
    _signal_group(pid, signal.SIGTERM)
    if not _wait_group_gone(pid, grace):
        _signal_group(pid, signal.SIGKILL)
        _wait_group_gone(pid, 5)


class ChildProcess:
    """One engine process: ``start`` with a readiness probe, ``stop``, and orphan clean-up."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        run_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.run_dir = Path(run_dir)
        # Extra variables over the inherited environment (None: inherit as is).
        self.env = child_environment(env) if env is not None else None
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, ready: Probe, timeout: float = 60.0) -> ChildProcess:
        """Start the command and wait until ``ready()``; on failure stop it and raise."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        stop_orphan(self.pid_path)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pid_path.write_text(json.dumps({"pid": self._process.pid, "argv": self.argv}))
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                self._forget()
                raise BackendUnavailable(
                    self.name, f"exited with {code} while starting; {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if ready():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise BackendUnavailable(
                    self.name, f"not ready within {timeout:.0f} s; {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds. Idempotent."""
        if self._process is not None:
            if self._process.poll() is None:
                terminate(self._process.pid, grace)
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL was sent
                pass
        self._forget()

    def _forget(self) -> None:
        self._process = None
        self.pid_path.unlink(missing_ok=True)


def recorded_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that pid still runs exactly the recorded argv, else None."""
    try:
        record = json.loads(Path(pid_file).read_text())
        pid, argv = int(record["pid"]), list(record["argv"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # compared as one line: where ps reports it (no /proc), arguments come back joined by spaces
    return pid if command_line(pid) == " ".join(argv) and argv else None


def stop_orphan(pid_file: Path, grace: float = 10.0) -> bool:
    """Stop the process a pid file names, if it verifiably is the recorded command. True if stopped."""
    pid = recorded_pid(pid_file)
    if pid is not None:
        terminate(pid, grace)
    Path(pid_file).unlink(missing_ok=True)
    return pid is not None


class SingleProcessEngine:
    """What every one-process engine shares: its ``ChildProcess`` once started, ``stop`` and ``pid``.

    Subclasses set ``self._child`` in ``start``; ``stop_grace`` is how long SIGTERM may take.
    """

    _child: ChildProcess | None = None
    stop_grace: float = 10.0

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop(grace=self.stop_grace)
            self._child = None

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

"""labcore.engines.process with a trivial real child: ``python -m http.server`` on a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labcore.engines.process import (
    ChildProcess,
    bind_port,
    free_port,
    http_ok,
    port_open,
    recorded_pid,
    stop_orphan,
)
from labcore.errors import BackendUnavailable


def http_server(run_dir: Path, port: int, name: str = "web") -> ChildProcess:
    return ChildProcess(name, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], run_dir)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/cmdline").read_bytes() != b""  # a zombie has an empty cmdline


def test_start_waits_for_readiness_then_stop_ends_it(tmp_path: Path) -> None:
    port = free_port()
    child = http_server(tmp_path, port).start(http_ok(f"http://127.0.0.1:{port}/"), timeout=30)
    pid = child.pid
    assert pid and port_open(port)()
    assert json.loads(child.pid_path.read_text()) == {"pid": pid, "argv": child.argv}
    child.stop()
    assert not port_open(port)()
    assert not alive(pid)
    assert not child.pid_path.exists()
    child.stop()  # idempotent


def test_log_file_collects_the_child_output(tmp_path: Path) -> None:
    child = ChildProcess("echo", [sys.executable, "-c", "print('hello from the child'); import time; time.sleep(60)"], tmp_path)
    child.start(lambda: "hello from the child" in child.log_path.read_text(), timeout=30)
    child.stop()
    assert "starting:" in child.log_path.read_text()


def test_a_child_that_exits_is_backend_unavailable_with_its_log_tail(tmp_path: Path) -> None:
    child = ChildProcess("broken", [sys.executable, "-c", "import sys; print('bad config line 3'); sys.exit(3)"], tmp_path)
    with pytest.raises(BackendUnavailable) as info:
        child.start(lambda: False, timeout=30)
    assert info.value.component == "broken"
    assert "exited with 3" in str(info.value) and "bad config line 3" in str(info.value)
    assert not child.pid_path.exists()


def test_not_ready_in_time_is_backend_unavailable_and_the_child_is_stopped(tmp_path: Path) -> None:
    child = ChildProcess("slow", [sys.executable, "-c", "import time; print('still booting', flush=True); time.sleep(60)"], tmp_path)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="not ready within 1 s") as info:
        child.start(lambda: False, timeout=1)
    assert time.monotonic() - started < 15
    assert "still booting" in str(info.value)
    assert not child.running()


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    child = ChildProcess("stubborn", [sys.executable, "-c", code], tmp_path)
    child.start(lambda: "up" in child.log_path.read_text(), timeout=30)
    pid = child.pid
    started = time.monotonic()
    child.stop(grace=0.5)
    assert time.monotonic() - started < 10
    assert not alive(pid)


def test_stop_reaches_the_grandchildren(tmp_path: Path) -> None:
    # A launcher script that forks the real server: stopping the child must stop both.
    port = free_port()
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-m', 'http.server', '{port}', '--bind', '127.0.0.1'])"
    child = ChildProcess("launcher", [sys.executable, "-c", code], tmp_path)
    child.start(port_open(port), timeout=30)
    child.stop()
    assert not port_open(port)()


def start_and_abandon(run_dir: Path, port: int) -> None:
    """A parent process starts a web server child in ``run_dir`` and dies without stopping it (a crashed `up`)."""
    script = (
        "import sys; from pathlib import Path; from labcore.engines.process import ChildProcess, port_open;"
        f"ChildProcess('web', [sys.executable, '-m', 'http.server', '{port}', '--bind', '127.0.0.1'], Path({str(run_dir)!r}))"
        f".start(port_open({port}), 30)"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_an_orphan_from_a_dead_parent_is_stopped_by_the_next_start(tmp_path: Path) -> None:
    port = free_port()
    start_and_abandon(tmp_path, port)
    orphan = recorded_pid(tmp_path / "web.pid")
    assert orphan is not None and alive(orphan)
    # The next start of the same engine stops it first, then takes the port itself.
    child = http_server(tmp_path, port).start(http_ok(f"http://127.0.0.1:{port}/"), timeout=30)
    assert not alive(orphan)
    assert child.pid != orphan
    child.stop()


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    # The pid file names a live process that runs something else: it must be left alone.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = tmp_path / "web.pid"
        pid_file.write_text(json.dumps({"pid": other.pid, "argv": ["python", "-m", "http.server"]}))
        assert recorded_pid(pid_file) is None
        assert stop_orphan(pid_file) is False
        assert other.poll() is None
        assert not pid_file.exists()
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()


def test_a_garbled_pid_file_is_ignored(tmp_path: Path) -> None:
    pid_file = tmp_path / "web.pid"
    pid_file.write_text("not json")
    assert stop_orphan(pid_file) is False
    assert not pid_file.exists()


# --- without /proc (macOS: `make lab` runs redis-server and weed there too) --------------------------
@pytest.fixture
def no_proc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """labcore.engines.process sees a machine without /proc, as on macOS; ps still answers."""
    from labcore.engines import process

    real, missing = process.Path, tmp_path / "no-proc"

    def path(*parts: object) -> Path:
        p = real(*parts)  # type: ignore[arg-type]
        return missing.joinpath(*p.parts[2:]) if p.parts[:2] == ("/", "proc") else p

    monkeypatch.setattr(process, "Path", path)


@pytest.mark.usefixtures("no_proc")
def test_without_proc_stop_ends_the_child_and_its_grandchildren(tmp_path: Path) -> None:
    port = free_port()
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-m', 'http.server', '{port}', '--bind', '127.0.0.1'])"
    child = ChildProcess("launcher", [sys.executable, "-c", code], tmp_path)
    child.start(port_open(port), timeout=30)
    pid = child.pid
    started = time.monotonic()
    child.stop()  # raised FileNotFoundError (listing /proc) before
    assert time.monotonic() - started < 5  # no wait for a SIGKILL: the group was seen gone
    assert not port_open(port)()
    assert not alive(pid)


@pytest.mark.usefixtures("no_proc")
def test_without_proc_an_orphan_is_still_recognised_and_stopped(tmp_path: Path) -> None:
    port = free_port()
    start_and_abandon(tmp_path, port)
    orphan = recorded_pid(tmp_path / "web.pid")  # None before: no /proc, no command line, never matched
    assert orphan is not None and alive(orphan)
    assert stop_orphan(tmp_path / "web.pid") is True
    assert not alive(orphan)
    assert not port_open(port)()


def test_a_bound_port_is_held_until_a_server_takes_it_over() -> None:
    """The runtime binds ports asked for as 0 at start; until uvicorn serves them nobody else may bind
    them (a ``free_port`` number can be taken in between: the fault stacks' "address already in use")."""
    import socket
    import threading

    import httpx
    import uvicorn

    held = bind_port()
    port = held.getsockname()[1]
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [held]}, daemon=True)
    thread.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "served"
    finally:
        server.should_exit = True
        thread.join(10)


def test_os_picked_ports_set_every_port_the_runtime_serves_to_0(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the test stacks, ``feedlab check`` and the benchmarks start ``feedlab up`` with."""
    from labcore.settings import OS_PICKED_PORTS, SERVED_PORTS, Settings

    for name, value in OS_PICKED_PORTS.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert {field: getattr(settings, field) for field in SERVED_PORTS} == dict.fromkeys(SERVED_PORTS, 0)
    assert set(SERVED_PORTS) == {"api_port", "ranking_port", "feature_port"}

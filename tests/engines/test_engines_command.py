"""``make engines-up`` / ``engines-status`` / ``engines-down``, run as a user runs them.

The Makefile targets are one line each over ``python -m labcore.engines``; this runs that command
with one engine (SeaweedFS: seconds to start) on its compose host port, under a temporary run dir,
and checks what a user sees: it comes up and answers, ``status`` names it running with its endpoint,
``down`` stops it (the port closes) and forgets it, and a second ``down`` has nothing to stop.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from labcore.engines.process import port_open
from labcore.engines.stack import Ports

ROOT = Path(__file__).resolve().parents[2]


def engines(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"FEEDLAB_ENGINES_RUN_DIR": str(run_dir)}
    return subprocess.run(
        [sys.executable, "-m", "labcore.engines", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_the_make_targets_are_this_command() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for command in ("fetch", "up", "down", "status"):
        assert re.search(rf"^engines-{command}:.*\n\t\$\(BIN\)/python -m labcore\.engines {command}$", makefile, re.M), command


def test_up_status_down_one_engine(tmp_path: Path) -> None:
    port = Ports().s3
    assert not port_open(port)(), f"port {port} is taken: this test starts SeaweedFS on its compose host port"
    up = engines(tmp_path, "up", "seaweedfs")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert re.search(r"^seaweedfs\s+up in", up.stdout, re.M), up.stdout
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code in {200, 403}  # an S3 answer

        status = engines(tmp_path, "status")
        assert status.returncode == 0, status.stderr
        assert re.search(rf"^seaweedfs\s+running\s+s3=http://127\.0\.0\.1:{port}$", status.stdout, re.M), status.stdout
    finally:
        down = engines(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert re.search(r"^seaweedfs\s+stopped$", down.stdout, re.M), down.stdout
    assert not port_open(port)()
    assert engines(tmp_path, "status").stdout.startswith("no engines started")
    assert engines(tmp_path, "down").stdout.strip() == "nothing to stop"

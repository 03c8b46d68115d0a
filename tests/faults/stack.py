"""A private ``feedlab up`` stack for fault tests: its own data dir and ports, so killing and
restarting its parts never disturbs the session's shared stack (``tests.conftest.running_stack``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labcore.lab.client import LabClient, connect
from labcore.settings import OS_PICKED_PORTS, Settings
from tests.conftest import RunningStack


def stack_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = os.environ | {"FEEDLAB_DATA_DIR": str(data_dir)} | OS_PICKED_PORTS | overrides
    env.pop("FEEDLAB_REDIS_URL", None)  # the runtime starts its own redis-server
    env.pop("FEEDLAB_SQL_URL", None)
    return env


def feedlab_up(data_dir: Path, env: dict[str, str]) -> RunningStack:
    """``feedlab up`` on ``data_dir``; fails the test with the runtime's log if it does not come up."""
    stack = RunningStack("", data_dir, env)
    up = stack.feedlab("up", timeout=180)
    log = data_dir / "runtime.log"
    assert up.returncode == 0, f"feedlab up failed:\n{up.stdout}\n{up.stderr}\n" + (
        log.read_text()[-5000:] if log.exists() else ""
    )
    info = json.loads((data_dir / "runtime.json").read_text())
    return RunningStack(info["api_url"], data_dir, env, info["feature_server_url"])


def client(stack: RunningStack) -> LabClient:
    return connect(Settings(data_dir=stack.data_dir))


def runtime_info(stack: RunningStack) -> dict[str, Any]:
    return json.loads((stack.data_dir / "runtime.json").read_text())

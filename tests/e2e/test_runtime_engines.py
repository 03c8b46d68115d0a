"""The embedded runtime's own engines (issue #16): SeaweedFS is its child, like redis-server, and goes
with it; ``/health`` names the vector and media engines.

A private ``feedlab up`` (not the session's shared stack), since the test ends it with ``feedlab down``.
What a SIGKILLed runtime leaves is ``tests/faults/test_runtime_kill.py``'s part.
"""

from __future__ import annotations

import httpx
import psutil
import pytest

from tests.faults.stack import feedlab_up, runtime_info, stack_env
from tests.helpers import wait_for


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_the_runtime_starts_seaweedfs_as_its_child_and_stops_it_on_down(tmp_path) -> None:  # noqa: ANN001
    env = stack_env(tmp_path)
    env.pop("FEEDLAB_S3_ENDPOINT", None)  # the runtime starts its own S3 server
    stack = feedlab_up(tmp_path, env)
    try:
        info = runtime_info(stack)
        weed = psutil.Process(info["s3_pid"])
        argv = weed.cmdline()
        assert weed.ppid() == info["pid"], "weed mini is the runtime's child"
        assert argv[1] == "mini" and "-master.telemetry=false" in argv and "-ip.bind=127.0.0.1" in argv, argv
        data = next(a.split("=", 1)[1] for a in argv if a.startswith("-dir="))
        assert data.startswith(str(tmp_path)), f"SeaweedFS keeps its data under the data dir, not {data}"
        listening = {c.laddr.ip for c in weed.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
        assert listening == {"127.0.0.1"}, listening
        assert info["s3_endpoint"].startswith("127.0.0.1:")

        health = httpx.get(f"{stack.api_url}/health", timeout=10).json()
        assert health["components"]["media"] == "ok" and health["components"]["vectors"] == "ok", health
        assert "qdrant-edge" in health["engines"]["vectors"], health["engines"]
        assert "SeaweedFS" in health["engines"]["media"] and info["s3_endpoint"] in health["engines"]["media"]
    finally:
        down = stack.feedlab("down")
    assert down.returncode == 0, down.stderr
    wait_for(lambda: gone(info["s3_pid"]), "feedlab down stops the runtime's weed mini", timeout=30)
    assert not (tmp_path / "seaweedfs" / "seaweedfs.pid").exists(), "a clean stop leaves no pid file to clean up"

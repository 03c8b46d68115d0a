"""``feedlab down`` after a learner stopped services from a notebook and left them stopped.

The feed's in-process Feast reader and ranker sit behind gates that ``lab.stop("feature-server")``
and ``lab.stop("ranking")`` close. A closed gate refuses every call, ``close()`` included: the runtime
must open them before it closes the stack, or shutdown stops half way and leaves its redis-server and
S3 server children running.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from tests.faults.stack import client, feedlab_up, runtime_info, stack_env
from tests.helpers import wait_for


def gone_or_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_down_with_ranking_and_feast_stopped_stops_everything(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    stack = feedlab_up(tmp_path, env)
    info = runtime_info(stack)
    with client(stack) as lab:
        reader = lab.create_user("down_reader")["user_id"]
        lab.stop("ranking")
        lab.stop("feature-server")
        assert lab.feed(reader)["fallbacks"] == ["features:redis-cache", "ranking:recency"]
    down = stack.feedlab("down", timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    for name in ("pid", "redis_pid", "s3_pid"):
        wait_for(lambda name=name: gone_or_zombie(info[name]), f"the runtime's {name} process has ended", timeout=20)
    log = (tmp_path / "runtime.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    assert not (tmp_path / "runtime.json").exists()

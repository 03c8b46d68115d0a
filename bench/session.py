"""A real embedded runtime with a seeded world, shared by the runtime cases of one ``feedlab bench``.

The data dir defaults to ``/tmp/feedlab-bench-<size>`` and is *kept* after the run. A run that
measures the catch-up (case ``catchup``, and ``large``) wipes it and seeds the world from scratch;
a run without that case reuses a data dir already holding the same world, and only the catch-up
check runs again. ``bench.feed_latency`` owns the process handling; this reuses it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.feed_latency import (
    FOREIGN_ENV,
    MARKER,
    BenchFailure,
    RuntimeProcess,
    wait_for_pipeline,
)

# Users the freshness case creates carry this prefix; the feed-latency case never samples them.
BENCH_USER_PREFIX = "benchfresh_"


def default_data_dir(size: str) -> Path:
    return Path(f"/tmp/feedlab-bench-{size}")


@dataclass
class Session:
    size: str
    seed: int
    data_dir: Path
    lab: Any = None
    runtime: RuntimeProcess | None = None
    world: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return int(self.lab.info.pid)


def fresh_data_dir(data_dir: Path, say: Callable[[str], None]) -> None:
    """Empty ``data_dir`` for a world seeded from scratch: only a bench data dir (its marker) or an empty one.

    A runtime left running there by an earlier bench run is stopped first (``feedlab down`` in that
    data dir: a no-op when none runs).
    """
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise BenchFailure(f"{data_dir} is not empty and holds no {MARKER}: not a bench world, not wiping it")
        leftover = RuntimeProcess(data_dir, {})
        leftover.started = True
        leftover.down()
        say(f"  wiping the previous world in {data_dir}")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)


def start_session(
    size: str, seed: int, data_dir: Path | None, *, fresh: bool = False, say: Callable[[str], None]
) -> Session:
    """Start (or reuse) the runtime in the data dir and connect; nothing is seeded yet.

    ``fresh`` wipes the data dir first (``fresh_data_dir``), so the world is seeded from scratch and
    its catch-up can be measured.
    """
    data_dir = (data_dir or default_data_dir(size)).resolve()
    if fresh:
        fresh_data_dir(data_dir, say)
    data_dir.mkdir(parents=True, exist_ok=True)
    marker = data_dir / MARKER
    if marker.exists():
        seeded = json.loads(marker.read_text())
        if (seeded["size"], seeded["seed"]) != (size, seed):
            raise BenchFailure(f"{data_dir} holds the {seeded['size']} world (seed {seeded['seed']}), not {size}/{seed}")
    runtime = RuntimeProcess(data_dir, {})
    for key in FOREIGN_ENV:  # this process's Settings must describe the same runtime
        os.environ.pop(key, None)
    os.environ.update({k: v for k, v in runtime.env.items() if k.startswith("FEEDLAB_")})
    session = Session(size, seed, data_dir, runtime=runtime)
    say(f"starting the runtime in {data_dir}")
    t0 = time.monotonic()
    runtime.up(300.0)
    session.world["runtime_start_seconds"] = round(time.monotonic() - t0, 1)

    import labcore
    from labcore.settings import Settings

    session.lab = labcore.connect(Settings(data_dir=data_dir))
    return session


def mark_seeded(session: Session, **first: float) -> None:
    """Write the data dir's marker: which world it holds (and, once, what its first seeding cost)."""
    marker = session.data_dir / MARKER
    kept = json.loads(marker.read_text()) if marker.exists() else {}
    kept = {k: kept[k] for k in ("first_seed_seconds", "first_catchup_seconds") if k in kept}
    marker.write_text(json.dumps({"size": session.size, "seed": session.seed} | kept | first))


def describe_world(session: Session, counts: dict[str, int], *, reused: bool, seed_seconds: float | None,
                   catchup_seconds: float) -> None:  # fmt: skip
    """``session.world``: what the report's World table shows."""
    marker = session.data_dir / MARKER
    first = json.loads(marker.read_text()) if marker.exists() else {}
    session.world.update({
        "size": session.size,
        "seed": session.seed,
        "data_dir": str(session.data_dir),
        "reused_seeded_data_dir": reused,
        "seed_seconds": None if seed_seconds is None else round(seed_seconds, 1),
        "catchup_seconds": round(catchup_seconds, 1),
        "first_seed_seconds_of_this_data_dir": first.get("first_seed_seconds"),
        "first_catchup_seconds_of_this_data_dir": first.get("first_catchup_seconds"),
        **{f"rows_{k}": v for k, v in counts.items()},
    })  # fmt: skip


def check_health(session: Session) -> None:
    health = session.lab.health()
    if health["status"] == "degraded":  # catching_up (events still queued) is not a fault
        raise BenchFailure(f"the stack is degraded before measuring: {health['components']}")


def settle(session: Session, *, catchup_timeout: float, say: Callable[[str], None]) -> Session:
    """Seed the session's world if it is not there yet and wait until the pipeline caught up."""
    size, seed = session.size, session.seed
    t0 = time.monotonic()
    seeded_now = session.lab.seed(size, seed, progress=False)
    seed_seconds = time.monotonic() - t0
    reused = "already_seeded" in seeded_now
    mark_seeded(session)
    counts = session.lab.store.counts()
    say(f"  {'reused the seeded world' if reused else f'seeded in {seed_seconds:.1f}s'}: {counts}; waiting for catch-up")
    catchup = wait_for_pipeline(session.lab, counts, fresh=not reused, timeout=catchup_timeout)
    if not reused:  # remember what the first seeding cost, for reports that reuse this data dir
        mark_seeded(session, first_seed_seconds=round(seed_seconds, 1), first_catchup_seconds=round(catchup, 1))
    check_health(session)
    describe_world(session, counts, reused=reused, seed_seconds=None if reused else seed_seconds, catchup_seconds=catchup)
    return session


def open_session(
    size: str, seed: int, data_dir: Path | None, *, catchup_timeout: float, say: Callable[[str], None]
) -> Session:
    """Start (or reuse) the runtime in the data dir, seed the world if needed, wait for catch-up.

    The runtime cases that do not measure the catch-up themselves use this; ``bench.cases.catchup``
    seeds a fresh world (``start_session(fresh=True)``) and times it instead.
    """
    return settle(start_session(size, seed, data_dir, say=say), catchup_timeout=catchup_timeout, say=say)


def close_session(session: Session | None, say: Callable[[str], None]) -> None:
    if session is None:
        return
    if session.lab is not None:
        session.lab.close()
    if session.runtime is not None:
        session.runtime.down()

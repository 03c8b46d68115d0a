"""Readiness: each consumer group's backlog with a rate and an ETA (``BacklogTracker``), and the
client's wait with a progress bar (``LabClient.wait_until_ready``), without servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from labcore.errors import BackendUnavailable
from labcore.lab.client import LabClient
from labcore.settings import Settings
from labcore.workers.backlog import (
    BacklogTracker,
    GroupBacklog,
    consumer_groups,
    is_ready,
)


class Backlogs:
    """Stands in for ``EventLog.backlog``: a settable figure per group, or a down log."""

    def __init__(self, **figures: int) -> None:
        self.figures = figures
        self.down = False

    def backlog(self, topic: str, group: str) -> int:
        if self.down:
            raise BackendUnavailable("event-log", "gone")
        return self.figures[group]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_groups_follow_the_profile() -> None:
    assert set(consumer_groups(Settings(olap="duckdb"))) == {"fanout", "embedding", "interests", "features", "impressions-loader"}
    assert "impressions-loader" not in consumer_groups(Settings(olap="pinot")), "Pinot ingests the topic itself"


def test_eta_comes_from_how_fast_the_backlog_shrinks() -> None:
    events, clock = Backlogs(embedding=1000), Clock()
    tracker = BacklogTracker(events, {"embedding": "new-posts"}, clock=clock, handled=lambda group: 0.0)  # type: ignore[arg-type]
    first = tracker.report()["embedding"]
    assert first == GroupBacklog("embedding", "new-posts", 1000, None, None), "one sample: no rate yet"
    clock.now += 10
    events.figures["embedding"] = 800
    later = tracker.report()["embedding"]
    assert later.rate_per_second == 20.0 and later.eta_seconds == 40.0
    clock.now += 10
    events.figures["embedding"] = 0
    assert tracker.report()["embedding"].eta_seconds == 0.0


def test_the_handling_rate_counts_even_while_new_events_arrive() -> None:
    events, clock, handled = Backlogs(embedding=500), Clock(), {"embedding": 0.0}
    tracker = BacklogTracker(events, {"embedding": "new-posts"}, clock=clock, handled=handled.__getitem__)  # type: ignore[arg-type]
    tracker.report()
    clock.now += 5
    handled["embedding"] = 250.0  # handled 50/s while the seed published as many: the backlog stood still
    assert tracker.report()["embedding"] == GroupBacklog("embedding", "new-posts", 500, 50.0, 10.0)


def test_a_stalled_group_has_no_eta_and_old_samples_leave_the_window() -> None:
    events, clock = Backlogs(fanout=300), Clock()
    tracker = BacklogTracker(events, {"fanout": "new-posts"}, window=30, clock=clock, handled=lambda group: 0.0)  # type: ignore[arg-type]
    tracker.report()
    clock.now += 10
    events.figures["fanout"] = 100
    assert tracker.report()["fanout"].eta_seconds == 5.0
    for _ in range(5):  # then nothing moves for 50 s: the rate decays to 0 with the window
        clock.now += 10
        report = tracker.report()["fanout"]
    assert report.rate_per_second == 0.0 and report.eta_seconds is None


def test_a_down_log_reports_an_unknown_backlog_and_not_ready() -> None:
    events = Backlogs(fanout=0)
    tracker = BacklogTracker(events, {"fanout": "new-posts"}, handled=lambda group: 0.0)  # type: ignore[arg-type]
    assert is_ready(tracker.report(), outbox_backlog=0)
    assert not is_ready(tracker.report(), outbox_backlog=3)
    events.down = True
    report = tracker.report()
    assert report["fanout"].backlog is None and not is_ready(report, outbox_backlog=0)


# --- LabClient.wait_until_ready ----------------------------------------------------------------------
def health(outbox: int, **backlogs: int | None) -> dict[str, Any]:
    return {
        "status": "ok" if outbox == 0 and not any(backlogs.values()) else "catching_up",
        "outbox_backlog": outbox,
        "workers": {},
        "backlog": {g: {"topic": "t", "backlog": b, "rate_per_second": None, "eta_seconds": None} for g, b in backlogs.items()},
    }


def client_answering(answers: list[dict[str, Any]]) -> LabClient:
    lab = object.__new__(LabClient)  # no runtime: only health() is called
    replies: Iterator[dict[str, Any]] = iter(answers)
    last: list[dict[str, Any]] = []

    def next_health() -> dict[str, Any]:
        last[:] = [next(replies, last[0] if last else answers[-1])]
        return last[0]

    lab.health = next_health  # type: ignore[method-assign]
    return lab


def test_wait_until_ready_returns_once_everything_is_handled() -> None:
    lab = client_answering([health(5, fanout=10, embedding=40), health(0, fanout=0, embedding=20), health(0, fanout=0, embedding=0)])
    assert lab.wait_until_ready(progress=False, interval=0)["status"] == "ok"


def test_wait_until_ready_can_wait_for_some_groups_only() -> None:
    lab = client_answering([health(0, fanout=0, embedding=0, interests=7)])
    assert lab.wait_until_ready(["embedding"], progress=False, interval=0)["backlog"]["interests"]["backlog"] == 7


def test_wait_until_ready_gives_up_when_nothing_moves() -> None:
    lab = client_answering([health(0, embedding=40)])
    with pytest.raises(TimeoutError, match="still 40 events"):
        lab.wait_until_ready(progress=False, stall_seconds=0.05, interval=0.01)

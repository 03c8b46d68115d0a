"""How far behind each consumer group is: its backlog on the event log, and an ETA.

Right after ``feedlab seed`` the embedding group owes minutes of work while the API already
answers; discovery is silently empty until it catches up. ``/health`` and ``feedlab status`` say
so with these figures, and ``LabClient.wait_until_ready`` waits on them.

The backlog comes from the log itself (``EventLog.backlog``: not delivered + delivered but not
acked), so it is right wherever the workers run (the runtime's threads, compose's containers).
The ETA is ``backlog / rate``, the rate measured over the last ``window`` seconds of samples:
events the group handled per second (this process's ``events_handled_total``, when its workers run
here), or — when that counter does not move, as in the compose API process — how fast the backlog
shrank. No rate yet (one sample, or a backlog that is not shrinking): no ETA.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from labcore.adapters.events.base import EventLog
from labcore.domain import TOPIC_ENGAGEMENTS, TOPIC_IMPRESSIONS, TOPIC_NEW_POSTS
from labcore.errors import LabError
from labcore.observability import metrics
from labcore.settings import Settings


def consumer_groups(settings: Settings) -> dict[str, str]:
    """The consumer groups this profile runs, ``{group: topic}`` (as ``bootstrap.build_workers`` names
    them). The impressions loader exists only with DuckDB; Pinot ingests the topic itself."""
    groups = {
        "fanout": TOPIC_NEW_POSTS,
        "embedding": TOPIC_NEW_POSTS,
        "interests": TOPIC_ENGAGEMENTS,
        "features": TOPIC_ENGAGEMENTS,
    }
    if settings.resolved_olap() == "duckdb":
        groups["impressions-loader"] = TOPIC_IMPRESSIONS
    return groups


@dataclass(frozen=True)
class GroupBacklog:
    group: str
    topic: str
    backlog: int | None  # None: the event log did not answer
    rate_per_second: float | None = None  # events handled per second, recently
    eta_seconds: float | None = None  # backlog / rate; 0 when there is no backlog


def handled_in_this_process(group: str) -> float:
    """``events_handled_total{group}`` of this process (0 where no worker of the group runs)."""
    return metrics.REGISTRY.get_sample_value("events_handled_total", {"group": group}) or 0.0


@dataclass
class _Sample:
    at: float
    backlog: int
    handled: float


class BacklogTracker:
    """Samples each group's backlog on every ``report()`` and estimates its ETA from the samples of
    the last ``window`` seconds. Thread-safe: the API calls it from its worker threads."""

    def __init__(
        self,
        events: EventLog,
        groups: Mapping[str, str],
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        handled: Callable[[str], float] = handled_in_this_process,
    ) -> None:
        self.events = events
        self.groups = dict(groups)
        self.window = window
        self.clock = clock
        self.handled = handled
        self._samples: dict[str, deque[_Sample]] = {group: deque() for group in self.groups}
        self._lock = threading.Lock()

    def report(self) -> dict[str, GroupBacklog]:
        """Every group's backlog now, with the recent rate and the ETA."""
        return {group: self._report(group, topic) for group, topic in self.groups.items()}

    def _report(self, group: str, topic: str) -> GroupBacklog:
        try:
            backlog = self.events.backlog(topic, group)
        except LabError:
            return GroupBacklog(group, topic, None)
        now = self.clock()
        with self._lock:
            samples = self._samples[group]
            samples.append(_Sample(now, backlog, self.handled(group)))
            while len(samples) > 2 and samples[1].at < now - self.window:
                samples.popleft()  # keep one sample at or before the window's start
            first, last = samples[0], samples[-1]
        rate = None
        if last.at - first.at >= 0.5:
            elapsed = last.at - first.at
            handled = (last.handled - first.handled) / elapsed
            shrunk = (first.backlog - last.backlog) / elapsed
            rate = max(handled, shrunk, 0.0)  # whichever this process can see
        if backlog == 0:
            eta = 0.0
        elif rate:
            eta = round(backlog / rate, 1)
        else:
            eta = None
        return GroupBacklog(group, topic, backlog, None if rate is None else round(rate, 2), eta)


def is_ready(backlogs: Mapping[str, GroupBacklog], outbox_backlog: int | None) -> bool:
    """Every committed event published, and handled by every group."""
    return outbox_backlog == 0 and all(b.backlog == 0 for b in backlogs.values())

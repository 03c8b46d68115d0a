"""The loop every event-log worker runs: poll a batch, handle it, ack what was handled.

Failure handling is the same on both logs. When handling a batch raises, nothing of it is acked; the
subscription is closed and opened again after a back-off, and Redis Streams then replays the
consumer's pending entries while Kafka re-reads from the last committed offset. Nothing is skipped,
so handlers must be idempotent (they are: ZADD of the same score, upsert of the same vector, ...).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from labcore.adapters.events.base import EventLog
from labcore.domain import Record
from labcore.errors import LabError
from labcore.observability import metrics

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[Record]], None]


@dataclass
class ConsumerStats:
    handled: int = 0
    failures: int = 0
    last_error: str | None = None
    last_batch_at: float | None = None
    # CPU of this loop's own thread while handling and acking (``time.thread_time``): where a worker
    # spends the machine. Threads a handler's library starts (the model's helpers) are not in it.
    cpu_seconds: float = 0.0


@dataclass
class ConsumerLoop:
    """Run ``handle`` over ``topic`` as member ``consumer`` of ``group`` until stopped.

    ``handle`` receives a batch; it may process it as a whole (the embedding worker batches the
    model call) or record by record. A batch is acked only after ``handle`` returns.
    """

    events: EventLog
    topic: str
    group: str
    consumer: str
    handle: Handler
    batch_size: int = 256
    poll_timeout_ms: int = 200
    backoff_seconds: float = 0.5
    stats: ConsumerStats = field(default_factory=ConsumerStats)

    def run(self, stop: threading.Event) -> None:
        subscription = None
        while not stop.is_set():
            try:
                if subscription is None:
                    subscription = self.events.subscribe(self.topic, self.group, self.consumer)
                records = subscription.poll(self.batch_size, self.poll_timeout_ms)
                if not records:
                    continue
                cpu_before = time.thread_time()
                try:
                    self.handle(records)
                    subscription.ack(records)
                finally:
                    self.stats.cpu_seconds += time.thread_time() - cpu_before
                self.stats.handled += len(records)
                self.stats.last_batch_at = time.time()
                metrics.EVENTS_HANDLED.labels(self.group).inc(len(records))
            except (LabError, OSError) as exc:
                # A backend is down or a record failed: nothing was acked for this batch, so it
                # comes back after we reconnect. Back off instead of spinning.
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                metrics.CONSUMER_FAILURES.labels(self.group).inc()
                log.warning("%s/%s: %s; retrying in %.1fs", self.group, self.consumer, exc, self.backoff_seconds)
                subscription = _close_quietly(subscription)
                stop.wait(self.backoff_seconds)
        _close_quietly(subscription)


def _close_quietly(subscription: object) -> None:
    try:
        if subscription is not None:
            subscription.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - the backend may be the thing that is down
        log.debug("closing a broken subscription failed", exc_info=True)
    return None


def run_until_signalled(*loops: ConsumerLoop) -> None:
    """Run a worker process's loops until SIGTERM or SIGINT (``docker stop``, Ctrl-C).

    One loop runs on the calling thread; several run in a thread each (the embedding worker's three
    share one model in memory), and this returns once every one has stopped.
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if len(loops) == 1:
        loops[0].run(stop)
        return
    threads = [threading.Thread(target=loop.run, args=(stop,), name=loop.group, daemon=True) for loop in loops]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join()

"""The outbox relay: publish committed outbox rows to the event log, then mark them published.

The write path never talks to the event log directly. It commits the row and its event together;
this relay delivers the event afterwards, at least once and in commit order. If the log is down the
rows wait in SQL and go out when it is back — acknowledged writes are never lost.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from opentelemetry import trace

from labcore.adapters.events.base import EventLog, Outgoing
from labcore.adapters.sql.store import SqlStore
from labcore.errors import LabError
from labcore.observability import metrics, tracing

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@dataclass
class OutboxRelay:
    store: SqlStore
    events: EventLog
    batch_size: int = 500
    poll_seconds: float = 0.05
    wakeup: threading.Event = field(default_factory=threading.Event)
    published: int = 0
    last_error: str | None = None

    def notify(self) -> None:
        """Called after a commit so the relay publishes now instead of at its next poll."""
        self.wakeup.set()

    def publish_pending(self) -> int:
        """Publish one batch in one round trip to the log; returns how many rows went out."""
        pending = self.store.outbox_pending(self.batch_size)
        if not pending:
            return 0
        # Each publish joins the trace of the request that wrote its row, and the consumers continue
        # from it: the record carries its span's context onwards. The spans share the batch's time.
        with tracing.continue_each(tracer, "outbox.publish", pending) as spans:
            for entry, span in zip(pending, spans, strict=True):
                span.set_attribute("topic", entry.topic)
            self.events.publish_many(
                [
                    Outgoing(entry.topic, entry.key, entry.payload, tracing.inject(entry.headers, span))
                    for entry, span in zip(pending, spans, strict=True)
                ]
            )
        # All or nothing as far as we know: after an error every row stays pending and goes out
        # again (at least once; consumers are idempotent).
        self.store.outbox_mark_published([entry.id for entry in pending])  # type: ignore[misc]
        for entry in pending:
            metrics.OUTBOX_PUBLISHED.labels(entry.topic).inc()
        self.published += len(pending)
        return len(pending)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.publish_pending() >= self.batch_size:
                    continue  # a backlog: keep draining without waiting
                self.last_error = None
            except LabError as exc:
                self.last_error = str(exc)
                log.warning("outbox relay: %s; retrying", exc)
                stop.wait(0.5)
            self.wakeup.wait(self.poll_seconds)
            self.wakeup.clear()

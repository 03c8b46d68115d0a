"""Fan-out on write: copy a new post's id into each follower's mailbox.

Reading a feed is then one ``ZREVRANGE`` instead of a query over everyone you follow. The price is
paid at write time, proportional to the author's follower count — which is why authors above the
celebrity threshold are *not* fanned out (their posts are marked ``delivery="pull"`` when written and
merged into followers' feeds at read time, see ``labcore.feed``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opentelemetry import trace

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore
from labcore.domain import PostCreated, Record
from labcore.observability import metrics, tracing

tracer = trace.get_tracer(__name__)


def delivery_for(follower_count: int, celebrity_threshold: int) -> str:
    """``push`` for ordinary authors, ``pull`` for authors with more followers than the threshold."""
    return "pull" if follower_count > celebrity_threshold else "push"


def deliver(event: PostCreated, store: SqlStore, mailboxes: RedisMailboxes) -> int:
    """Fan one post out; returns the number of mailboxes written (0 for a celebrity's post)."""
    if event.delivery == "pull":
        return 0
    followers = store.follower_ids(event.author_id)
    return mailboxes.deliver(event.post_id, event.created_at, followers)


class FanoutHandler:
    """The fan-out worker's batch handler (plugged into ``ConsumerLoop``)."""

    def __init__(
        self,
        store: SqlStore,
        mailboxes: RedisMailboxes,
        deliver_post: Callable[[PostCreated, SqlStore, RedisMailboxes], int] = deliver,
    ) -> None:
        """``deliver_post`` is the ``fanout`` extension point (``labcore.extensions``)."""
        self.store = store
        self.mailboxes = mailboxes
        self.deliver = deliver_post
        self.deliveries = 0
        self.posts = 0

    def __call__(self, records: Sequence[Record]) -> None:
        for record in records:
            event = PostCreated.from_dict(record.value)
            # Each post's fan-out continues the trace of the request that wrote it.
            with tracer.start_as_current_span(
                "fanout.deliver",
                context=tracing.extract(record.headers),
                attributes={"post_id": event.post_id, "delivery": event.delivery},
            ) as span:
                delivered = self.deliver(event, self.store, self.mailboxes)
                span.set_attribute("mailboxes", delivered)
            self.deliveries += delivered
            self.posts += 1
            metrics.FANOUT_POSTS.labels(event.delivery).inc()
            metrics.FANOUT_DELIVERIES.inc(delivered)
            if delivered and record.written_at is not None:
                metrics.FANOUT_LAG.observe(max(0.0, time.time() - record.written_at))

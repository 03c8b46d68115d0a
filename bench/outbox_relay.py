"""How fast the outbox relay drains a backlog: one pipelined round trip per batch versus one XADD each.

    python -m bench.outbox_relay [--events 50000] [--batch-size 500]

A seeded world leaves its events in the outbox (the medium world ~80,000, large ~400,000), and every
consumer group waits for the relay. This fills a throwaway SQLite outbox with ``--events`` rows shaped
like the seed's (posts, follows and likes, each with a trace context), starts its own redis-server on a
free port, and drains the outbox twice with ``OutboxRelay.publish_pending`` under the runtime's tracing:
once through ``RedisStreamsEventLog.publish_many`` (the product: one pipeline per batch) and once
through the port's default ``publish_many`` (the baseline: one XADD round trip per event). Prints
events/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=500, help="the relay's batch (its default)")
    args = parser.parse_args()

    import redis
    from opentelemetry import trace

    from labcore.adapters.events.base import EventLog, Outgoing
    from labcore.adapters.events.redis_streams import RedisStreamsEventLog
    from labcore.adapters.sql.store import OutboxEntry, SqlStore, make_engine
    from labcore.domain import TOPIC_ENGAGEMENTS, TOPIC_NEW_POSTS
    from labcore.engines.redis import EmbeddedRedis
    from labcore.observability import tracing
    from labcore.settings import Settings
    from labcore.write.outbox import OutboxRelay

    class OneByOne(RedisStreamsEventLog):
        """The baseline: the port's default ``publish_many``, one ``publish`` (one XADD) per event."""

        def publish_many(self, events: Sequence[Outgoing]) -> None:
            EventLog.publish_many(self, events)

    work = Path(tempfile.mkdtemp(prefix="outbox-relay-"))
    server = EmbeddedRedis(work / "redis", appendonly=False)
    tracing.setup_tracing(Settings(data_dir=work), "bench-outbox")  # the runtime's spans, kept in memory
    tracer = trace.get_tracer(__name__)
    entries = []  # the same rows for both runs
    for n in range(args.events):
        with tracer.start_as_current_span("write"):
            headers = tracing.inject()
        topic, key = (TOPIC_NEW_POSTS, f"author-{n % 997}") if n % 3 == 0 else (TOPIC_ENGAGEMENTS, f"user-{n % 1999}")
        entries.append(OutboxEntry(topic, key, {"n": n, "post_id": f"post-{n}", "user_id": key}, headers))
    try:
        server.start()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        rates: dict[str, float] = {}
        for name, log_class in (("one XADD per event (baseline)", OneByOne), ("pipelined batch (product)", RedisStreamsEventLog)):
            client.flushall()
            store = SqlStore(make_engine(f"sqlite:///{work / (log_class.__name__ + '.db')}"))
            store.create_schema()
            with store.engine.begin() as conn:
                for i in range(0, len(entries), 5000):
                    store._enqueue(conn, entries[i : i + 5000])
            relay = OutboxRelay(store, log_class(client, 8), batch_size=args.batch_size)
            started = time.perf_counter()
            while relay.publish_pending():
                pass
            seconds = time.perf_counter() - started
            rates[name] = relay.published / seconds
            assert store.outbox_backlog() == 0
            stream_total = sum(client.xlen(k) for k in client.scan_iter("events:*"))
            assert stream_total == args.events, (stream_total, args.events)
            print(f"{name:32s} {relay.published:,} events in {seconds:5.1f} s: {rates[name]:8,.0f} events/s", flush=True)
            store.engine.dispose()
        baseline, product = rates.values()
        print(f"ratio (pipelined / one by one): {product / baseline:.2f}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()

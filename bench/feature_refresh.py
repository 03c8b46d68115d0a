"""How fast the ``features`` group refreshes follows, per batch size: SQL versus feature writes.

    python -m bench.feature_refresh --data-dir .feedlab      # a seeded, stopped runtime's data dir

Copies the data dir (SQLite, Feast's online store and history) to a temporary folder, starts its
own redis-server on a free port for the feature cache, and calls ``FeatureRefresh.follows_changed``
on the world's follow edges in consumer-sized batches, timing the SQL reads (``user_stats_rows``,
``affinity_rows``) apart from the whole refresh. Nothing of the original data dir is written.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1000, 4000])
    parser.add_argument("--follows", type=int, default=16_000, help="edges refreshed per batch size")
    args = parser.parse_args()

    import redis
    import sqlalchemy as sa

    from labcore.adapters.sql.feature_rows import affinity_rows, user_stats_rows
    from labcore.adapters.sql.schema import follows
    from labcore.adapters.sql.store import make_engine
    from labcore.engines.redis import EmbeddedRedis
    from labcore.features.cache import RedisFeatureCache
    from labcore.features.history import FeatureHistory
    from labcore.features.repo import offline_data_dir, open_store
    from labcore.features.writer import FeatureWriter
    from labcore.settings import Settings
    from labcore.workers.features import FeatureRefresh

    work = Path(tempfile.mkdtemp(prefix="feature-refresh-"))
    data_dir = work / "data"
    shutil.copytree(args.data_dir, data_dir, ignore=shutil.ignore_patterns("seaweedfs", "engines", "redis", "*.log"))
    server = EmbeddedRedis(work / "redis", appendonly=False)
    try:
        url = server.start().url
        settings = Settings(data_dir=data_dir, redis_url=url, sql_url=f"sqlite:///{data_dir / 'feed.db'}")
        engine = make_engine(settings.sql_url)
        with engine.connect() as conn:
            query = sa.select(follows.c.follower_id, follows.c.followee_id).order_by(follows.c.follower_id)
            pairs = [(r.follower_id, r.followee_id) for r in conn.execute(query)][: args.follows]
        store = open_store(settings, redis_url=url)
        cache = RedisFeatureCache(redis.Redis.from_url(url))
        writer = FeatureWriter(store, cache, history=FeatureHistory(offline_data_dir(settings)))
        refresh = FeatureRefresh(engine, writer)
        refresh.follows_changed(pairs[:50])  # warm-up: Feast's registry, SQLite's caches
        for size in args.sizes:
            batches = [pairs[i : i + size] for i in range(0, len(pairs), size)]
            sql_s = total_s = 0.0
            for batch in batches:
                started = time.perf_counter()
                user_stats_rows(engine, list(dict.fromkeys(u for pair in batch for u in pair)))
                affinity_rows(engine, batch)
                sql_s += time.perf_counter() - started
                started = time.perf_counter()
                refresh.follows_changed(batch)
                total_s += time.perf_counter() - started
            n = len(pairs)
            print(
                f"batch {size:5d}: {n / total_s:6.0f} follows/s, {1000 * total_s / n:.3f} ms/follow"
                f" (SQL {1000 * sql_s / n:.3f}), {1000 * total_s / len(batches):.0f} ms per batch",
                flush=True,
            )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

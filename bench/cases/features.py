"""Case 5 — features: 150 candidates through Feast's feature server vs straight from the online store.

Three ways to the same rows, for one reader and the 150 newest posts, timed interleaved:

* ``server`` — ``FeastServerFeatures`` against the runtime's feature server over HTTP
  (``settings.feature_include_embeddings``): the compose profile's path, walkthrough step 7.
* ``feast_in_process`` — ``FeastOnlineFeatures`` in this process on the same online store (Feast's
  SQLite file): the embedded feed's stage 3 read — ``OnlineStore.online_read`` per feature view of the
  same two services, planned once, embeddings included.
* ``get_online_features`` — ``FeatureStore.get_online_features(...).to_dict()`` with the same feature
  list and entity rows as the server request: Feast's high-level call, which re-plans every read.
* ``redis_cache`` — ``RedisFeatureCache.ranking_features``, the feed's fallback: one pipelined
  round trip of HMGETs (it also returns the embeddings, base64, which the server path leaves out).

The ratio is the in-process Feast time over the server time (≤ 1: the server costs more).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import sqlalchemy as sa

from bench.cases.feed import eligible_users
from bench.report import CaseResult
from bench.session import Session

CANDIDATES = 150


def run(session: Session, *, reps: int = 40, quick: bool = False, say: Callable[[str], None] = print) -> CaseResult:
    from labcore.adapters.sql.schema import posts
    from labcore.features.base import AFFINITY_SERVICE, RANKING_WITHOUT_EMBEDDING
    from labcore.features.cache import RedisFeatureCache
    from labcore.features.feast import FeastOnlineFeatures, FeastServerFeatures
    from labcore.features.repo import open_serving_store

    if quick:
        reps = min(reps, 5)
    started = time.perf_counter()
    lab = session.lab
    settings = lab.settings
    user_id = eligible_users(session)[0]
    with lab.store.engine.connect() as conn:
        rows = conn.execute(sa.select(posts.c.id, posts.c.user_id).order_by(posts.c.created_at.desc()).limit(CANDIDATES))
        candidates = [(r.id, r.user_id) for r in rows]
    authors = sorted({a for _, a in candidates})

    server = FeastServerFeatures(
        lab.info.feature_server_url, timeout=10.0, include_embeddings=settings.feature_include_embeddings
    )
    server_with_vectors = FeastServerFeatures(lab.info.feature_server_url, timeout=10.0, include_embeddings=True)
    cache = RedisFeatureCache(lab.redis)
    store = open_serving_store(settings, redis_url=lab.info.redis_url)
    affinity_service = store.get_feature_service(AFFINITY_SERVICE)
    ranking_rows = [{"user_id": user_id, "post_id": p} for p, _ in candidates]
    affinity_rows = [{"user_id": user_id, "author_id": a} for a in authors]

    feed_read = FeastOnlineFeatures(lambda: store)

    def high_level() -> dict:
        main = store.get_online_features(features=RANKING_WITHOUT_EMBEDDING, entity_rows=ranking_rows).to_dict()
        return main | store.get_online_features(features=affinity_service, entity_rows=affinity_rows).to_dict()

    paths: dict[str, Callable[[], object]] = {
        "server": lambda: server.ranking_features(user_id, candidates),
        "feast_in_process": lambda: feed_read.ranking_features(user_id, candidates),
        "get_online_features": high_level,
        "redis_cache": lambda: cache.ranking_features(user_id, candidates),
        "server_with_embeddings": lambda: server_with_vectors.ranking_features(user_id, candidates),
    }
    for fn in paths.values():  # warm-up: connections, Feast's registry cache
        fn()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(reps):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(1000 * (time.perf_counter() - t0))
    med = {name: statistics.median(v) for name, v in times.items()}
    # Same values? Count rows with post features on each path.
    via_server = server.ranking_features(user_id, candidates)
    via_cache = cache.ranking_features(user_id, candidates)
    raw = high_level()
    agree = sum(
        1 for p, _ in candidates
        if via_server[p].post is not None and via_cache[p].post is not None
        and via_server[p].post.like_count == via_cache[p].post.like_count
    )  # fmt: skip
    in_process_found = sum(v is not None for v in raw.get("like_count", []))
    server.close(), server_with_vectors.close()
    say(
        f"  features ({CANDIDATES} candidates, {len(authors)} authors): server {med['server']:.1f} ms,"
        f" in-process Feast {med['feast_in_process']:.1f} ms (get_online_features"
        f" {med['get_online_features']:.1f} ms), Redis cache {med['redis_cache']:.1f} ms,"
        f" server with embeddings {med['server_with_embeddings']:.1f} ms"
    )
    result = CaseResult(
        name="features", title="5 · Features",
        headline=f"feature server {med['server']:.1f} ms vs in-process Feast {med['feast_in_process']:.1f} ms"
        f" vs Redis cache {med['redis_cache']:.1f} ms ({CANDIDATES} candidates)",
        ratio=med["feast_in_process"] / med["server"], ratio_label="in-process Feast / server (time)",
        target=None, target_label="— (report)",
    )  # fmt: skip
    result.figures = {
        "candidates": len(candidates),
        "authors": len(authors),
        "repetitions": reps,
        "median_ms": med,
        "p90_ms": {name: sorted(v)[int(0.9 * (len(v) - 1))] for name, v in times.items()},
        "server_over_in_process": med["server"] / med["feast_in_process"],
        "server_over_redis_cache": med["server"] / med["redis_cache"],
        "rows_with_post_features_equal_server_vs_cache": agree,
        "rows_with_post_features_in_process": in_process_found,
        "feed_path": settings.resolved_feature_read(),
    }
    result.notes = [
        f"The embedded feed reads Feast in-process (settings.feature_read = {settings.resolved_feature_read()!r}:"
        " FeastOnlineFeatures, feature_source \"feast\"): feast_in_process here is that read, embeddings included"
        " (the online store returns every feature of a row anyway). Feast's feature server stays the compose"
        " profile's path and answers walkthrough step 7 (server, without the embeddings unless"
        " feature_include_embeddings; server_with_embeddings with them). The Redis cache is the fallback"
        " (feature_source \"redis-cache\"), written alongside every Feast write.",
        "feast_in_process reads the same two feature services through the online store's online_read, planned"
        " once; get_online_features is Feast's high-level call (ranking features minus the embedding, then the"
        " affinity service), which re-plans every read; the server adds HTTP and JSON on both sides.",
    ]
    result.seconds = time.perf_counter() - started
    return result

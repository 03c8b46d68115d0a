"""Case 6 — freshness: post created → visible to a follower, under a steady posting rate.

Setup, in SQL in bulk (not the API): ``authors`` new authors, each followed by the same ``followers``
new users (200 each: at the celebrity threshold, so every post is pushed). Then for ``duration``
seconds posting threads send ``POST /posts/`` on a fixed schedule of ``rate`` posts/s, round-robin
over the authors, through the real write path (row + outbox, relay, event log, fan-out worker).

* **mailbox** (every post): a checker polls ``ZSCORE feed:{probe}`` every 5 ms, where the probe is
  the author's *last* follower in fan-out order, so "visible" means the whole fan-out is done. The
  feed's social retrieval reads exactly this sorted set.
* **feed** (every ``feed_every``-th post): a poller sends ``GET /feed/explain?user_id=probe`` (the
  same pipeline as ``GET /feed/``, plus each candidate's journey) until the post is a candidate that
  survived the filter (or 5 s pass). Whether it also made the returned page is counted, not
  required: the re-ranker keeps at most 2 posts per author, so a prolific author's newest post can
  be a candidate and still be left out of one page by design.

* **features** (every post): the same checker polls ``HEXISTS pf:{post_id} embedding`` — the post's
  ``post_stats`` row with its embedding in the Redis feature cache, which ``FeatureWriter`` writes
  right after the Feast push of the same row (so it is in Feast's online store too).

Latency is from just before the POST is sent to the first poll that sees the post. The target
(p99 ≤ 1 s) is judged on the mailbox and the features figures, which cover every post.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import numpy as np

from bench.report import CaseResult
from bench.session import BENCH_USER_PREFIX, Session

LIMIT_S = 1.0


def _bulk_users(session: Session, authors: int, followers: int) -> tuple[list[str], list[str]]:
    from labcore.adapters.sql.schema import follows, users
    from labcore.domain import utcnow

    now = utcnow().replace(tzinfo=None)
    run = uuid.uuid4().hex[:8]
    author_ids = [str(uuid.uuid4()) for _ in range(authors)]
    follower_ids = [str(uuid.uuid4()) for _ in range(followers)]
    rows = [
        {"id": uid, "username": f"{BENCH_USER_PREFIX}{run}_a{i}", "display_name": "bench author",
         "follower_count": followers, "following_count": 0, "created_at": now}
        for i, uid in enumerate(author_ids)
    ] + [
        {"id": uid, "username": f"{BENCH_USER_PREFIX}{run}_f{i}", "display_name": "bench follower",
         "follower_count": 0, "following_count": authors, "created_at": now}
        for i, uid in enumerate(follower_ids)
    ]  # fmt: skip
    with session.lab.store.engine.begin() as conn:
        conn.execute(users.insert(), rows)
        conn.execute(
            follows.insert(),
            [{"follower_id": f, "followee_id": a, "created_at": now} for a in author_ids for f in follower_ids],
        )
    return author_ids, follower_ids


def _pcts(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    a = np.asarray(values)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def run(
    session: Session, *, rate: float = 50.0, followers: int = 200, authors: int = 25, duration: float = 20.0,
    feed_every: int = 25, senders: int = 10, quick: bool = False, say: Callable[[str], None] = print,
) -> CaseResult:  # fmt: skip
    from labcore.adapters.redis.mailboxes import mailbox_key
    from labcore.features.cache import post_key

    if quick:
        rate, followers, authors = min(rate, 10.0), min(followers, 20), min(authors, 3)
        duration, feed_every = min(duration, 3.0), 5
    started = time.perf_counter()
    lab = session.lab
    author_ids, follower_ids = _bulk_users(session, authors, followers)
    probe = max(follower_ids)  # follower_ids() is ordered by follower id: the last mailbox written
    total = int(rate * duration)
    say(f"  freshness: {authors} authors x {followers} followers; {total} posts at {rate:g}/s for {duration:g}s")

    lock = threading.Lock()
    pending: dict[str, float] = {}  # post_id -> sent at (perf_counter)
    mailbox_ms: dict[str, float] = {}
    pending_features: dict[str, float] = {}  # post_id -> sent at, until its post_stats row has the embedding
    features_ms: dict[str, float] = {}
    feed_threads: list[threading.Thread] = []
    feed_ms: list[float] = []
    feed_missed: list[str] = []
    explain_ms: list[float] = []  # how long each poll took: the feed figure's resolution
    feed_ranked: list[str] = []  # also among the items returned (rank ≤ limit)
    post_ms: list[float] = []
    errors: list[str] = []
    counter = itertools.count()
    t0 = time.perf_counter() + 0.2
    done = threading.Event()

    def sender() -> None:
        with httpx.Client(base_url=lab.info.api_url, timeout=10.0) as client:
            while True:
                i = next(counter)
                if i >= total:
                    return
                due = t0 + i / rate
                time.sleep(max(0.0, due - time.perf_counter()))
                sent = time.perf_counter()
                response = client.post("/posts/", json={"user_id": author_ids[i % authors], "content": f"fresh {i}"})
                answered = time.perf_counter()
                if response.status_code != 201:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                post_id = response.json()["post_id"]
                with lock:
                    post_ms.append(1000 * (answered - sent))
                    pending[post_id] = sent
                    pending_features[post_id] = sent
                if i % feed_every == 0:
                    poller = threading.Thread(target=feed_poller, args=(post_id, sent), daemon=True)
                    poller.start()
                    with lock:
                        feed_threads.append(poller)

    def checker() -> None:
        key = mailbox_key(probe)
        while not (done.is_set() and not pending and not pending_features):
            with lock:
                batch = list(pending.items())
                feature_batch = list(pending_features.items())
            if feature_batch:
                pipe = lab.redis.pipeline(transaction=False)
                for post_id, _ in feature_batch:
                    pipe.hexists(post_key(post_id), "embedding")
                seen_at = time.perf_counter()
                for (post_id, sent), present in zip(feature_batch, pipe.execute(), strict=True):
                    if present:
                        with lock:
                            features_ms[post_id] = 1000 * (seen_at - sent)
                            pending_features.pop(post_id, None)
            if batch:
                pipe = lab.redis.pipeline(transaction=False)
                for post_id, _ in batch:
                    pipe.zscore(key, post_id)
                seen_at = time.perf_counter()
                for (post_id, sent), score in zip(batch, pipe.execute(), strict=True):
                    if score is not None:
                        with lock:
                            mailbox_ms[post_id] = 1000 * (seen_at - sent)
                            pending.pop(post_id, None)
            time.sleep(0.005)

    def feed_poller(post_id: str, sent: float) -> None:
        # One short-lived poller per sampled post (samples are 1/feed_every of the posts), so a slow
        # read never queues the next sample behind it.
        with httpx.Client(base_url=lab.info.api_url, timeout=10.0) as client:
            while True:
                asked = time.perf_counter()
                body = client.get("/feed/explain", params={"user_id": probe}).json()
                now = time.perf_counter()
                with lock:
                    explain_ms.append(1000 * (now - asked))
                journey = next((j for j in body.get("journeys", []) if j["post_id"] == post_id), None)
                if journey is not None and not journey.get("filtered"):
                    with lock:
                        feed_ms.append(1000 * (now - sent))
                        if journey.get("rank") is not None:
                            feed_ranked.append(post_id)
                    return
                if now - sent > 5.0:
                    with lock:
                        feed_missed.append(post_id)
                    return
                time.sleep(0.02)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    helpers = [threading.Thread(target=checker, daemon=True)]
    for t in threads + helpers:
        t.start()
    for t in threads:
        t.join()
    send_seconds = time.perf_counter() - t0
    done.set()
    drain_deadline = time.perf_counter() + 15.0
    while (pending or pending_features) and time.perf_counter() < drain_deadline:
        time.sleep(0.05)
    unseen, features_unseen = len(pending), len(pending_features)
    with lock:
        pending.clear()  # lets the checker stop
        pending_features.clear()
    for t in helpers + feed_threads:
        t.join(timeout=30)
    sent_ok = total - len(errors)
    mailbox = _pcts(list(mailbox_ms.values()))
    feed = _pcts(feed_ms)
    features = _pcts(list(features_ms.values()))
    achieved = sent_ok / send_seconds if send_seconds else 0.0
    say(
        f"  freshness: achieved {achieved:.1f} posts/s; mailbox visible p50 {mailbox['p50'] or 0:.0f} ms,"
        f" p99 {mailbox['p99'] or 0:.0f} ms; feed p50 {feed['p50'] or 0:.0f} ms, p99 {feed['p99'] or 0:.0f} ms"
        f" ({len(feed_ms)} sampled, {len(feed_missed)} not in the feed within 5 s); features p99"
        f" {features['p99'] or 0:.0f} ms; unseen {unseen}"
    )
    p99_s = (mailbox["p99"] or float("inf")) / 1000
    result = CaseResult(
        name="freshness", title="6 · Freshness",
        headline=f"post → follower's mailbox p50 {mailbox['p50'] or 0:.0f} ms, p99 {mailbox['p99'] or 0:.0f} ms"
        f" at {achieved:.1f} posts/s × {followers} followers; features p99 {features['p99'] or 0:.0f} ms;"
        f" feed p99 {feed['p99'] or 0:.0f} ms",
        ratio=LIMIT_S / p99_s if p99_s else None, ratio_label="1 s / mailbox p99",
        target=1.0, target_label=f"mailbox and features p99 ≤ {LIMIT_S:g} s",
    )  # fmt: skip
    result.figures = {
        "offered_posts_per_s": rate,
        "achieved_posts_per_s": achieved,
        "posts_sent": sent_ok,
        "post_errors": len(errors),
        "followers_per_author": followers,
        "authors": authors,
        "duration_s": duration,
        "mailbox_visible_ms": mailbox,
        "mailbox_posts_measured": len(mailbox_ms),
        "mailbox_unseen_after_drain": unseen,
        "features_fresh_ms": features,
        "features_posts_measured": len(features_ms),
        "features_unseen_after_drain": features_unseen,
        "feed_visible_ms": feed,
        "feed_posts_sampled": len(feed_ms) + len(feed_missed),
        "feed_not_visible_within_5s": len(feed_missed),
        "feed_sampled_also_in_returned_items": len(feed_ranked),
        "post_request_ms": _pcts(post_ms),
        "feed_poll_request_ms": _pcts(explain_ms),
    }
    result.judge()
    if unseen or features_unseen or (features["p99"] or float("inf")) > 1000 * LIMIT_S:
        result.met = False
    poll = result.figures["feed_poll_request_ms"]
    if feed["p99"] is not None and feed["p99"] > 1000 * LIMIT_S:
        result.notes.append(
            f"The feed sample's p99 ({feed['p99']:.0f} ms over {len(feed_ms)} posts, i.e. close to its maximum)"
            f" is above 1 s. It is an upper bound: a poll that started just before the fan-out finished"
            f" returns without the post, and the next one has to run whole; each GET /feed/explain took"
            f" p50 {poll['p50'] or 0:.0f} ms, p99 {poll['p99'] or 0:.0f} ms under this load. The verdict uses"
            " the mailbox and features figures (every post; the feed's social retrieval reads that sorted set on each request)."
        )
    result.notes[:0] = [  # before the feed note above
        "Followers and follows are bulk-inserted in SQL; posts go through POST /posts/ (the real write path)."
        " The bench users are named benchfresh_* and are never sampled by the feed-latency case.",
        "The runtime also embeds every post and refreshes its features meanwhile (same process, same CPU).",
    ]
    if errors:
        result.notes.append(f"{len(errors)} POSTs failed, e.g. {errors[0]}")
    if result.met is False:
        result.notes.append(
            f"Missed, measured: mailbox p99 {mailbox['p99'] or 0:.0f} ms; features p99 {features['p99'] or 0:.0f} ms"
            f" ({features_unseen} posts without features after the drain);"
            f" POST p99 {result.figures['post_request_ms']['p99'] or 0:.0f} ms;"
            f" achieved {achieved:.1f} of {rate:g} posts/s offered; {unseen} posts never seen."
        )
    result.seconds = time.perf_counter() - started
    return result

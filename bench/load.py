"""Hold a mix of posts, likes, impressions and feed reads against a running stack, then check that
nothing was lost.

    python -m bench.load                      # 60 s against the stack `feedlab up` started
    python -m bench.load --seconds 10 --concurrency 8 --json /tmp/load.json

1. Finds the API with ``labcore.connect()`` (``runtime.json`` under ``FEEDLAB_DATA_DIR`` or
   ``--data-dir``) and refuses anything that is not loopback: this is a lab tool, never a way to
   load someone else's server.
2. Creates its own users (a fresh prefix per run): ``--authors`` authors and ``--readers`` readers,
   each reader following 3-8 authors.
3. Runs ``--concurrency`` asyncio workers (httpx, keep-alive) for ``--seconds`` or until
   ``--max-requests``, whichever comes first. Each request picks an operation by weight:
   feed read 45 %, post 25 %, like 15 %, impressions 15 % (likes and impressions name posts this
   run already got acknowledged).
4. Prints throughput, p50/p99 and errors per operation. An error is any exception or an unexpected
   status (post 201; like 201/200; impressions 202; feed 200). Feeds that named a fallback are
   counted separately (degraded, not failed).
5. Waits up to ``--drain-seconds`` and checks nothing was lost: every acknowledged post is in SQL,
   in each follower's mailbox (the newest ``mailbox_cap`` of them), and has a vector (the vector
   count grew by the number of posts: run it alone, other writers would blur that figure); every
   acknowledged like is counted on its post; every acknowledged impression reached the OLAP store.

Exit status 1 when there were errors or something was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import random
import socket
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np

from labcore.errors import LabError
from labcore.lab.client import LabClient, connect
from labcore.settings import Settings

MIX = {"feed": 45, "post": 25, "like": 15, "impressions": 15}
EXPECTED = {"feed": {200}, "post": {201}, "like": {200, 201}, "impressions": {202}}
MAX_SECONDS, MAX_CONCURRENCY = 600, 64
WORDS = (
    "sourdough", "espresso", "alpine", "trail", "jazz", "vinyl", "pottery", "chess", "opening", "garden",
    "tomato", "sunset", "harbour", "cycling", "novel", "poetry", "ramen", "climbing", "film", "camera",
)  # fmt: skip


@dataclass
class Options:
    seconds: float = 60.0
    concurrency: int = 8
    max_requests: int = 500_000
    authors: int = 20
    readers: int = 80
    drain_seconds: float = 120.0
    seed: int = 7
    data_dir: Path | None = None


@dataclass
class Tally:
    """What the run did and what the stack acknowledged."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    degraded_feeds: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)  # acknowledged PostPublic bodies
    new_likes: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # post -> 201s
    impressions: int = 0  # acknowledged ("recorded") impressions
    requests: int = 0


def require_loopback(url: str) -> None:
    """Refuse a URL whose host is not (or does not resolve only to) a loopback address."""
    host = urlparse(url).hostname
    if not host:
        raise SystemExit(f"not a URL: {url!r}")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"cannot resolve {host!r}: {exc}") from exc
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"refusing to load {url}: bench.load only targets loopback (got {sorted(addresses)})")


# --- setup -----------------------------------------------------------------------------------------
async def make_users(http: httpx.AsyncClient, opts: Options, rng: random.Random) -> tuple[list[str], dict[str, list[str]]]:
    """Authors, and readers following 3-8 of them; returns authors and ``author -> followers``."""
    prefix = f"load{uuid.uuid4().hex[:6]}"

    async def user(name: str) -> str:
        response = await http.post("/users/", json={"username": name, "display_name": name})
        response.raise_for_status()
        return response.json()["user_id"]

    authors = list(await asyncio.gather(*(user(f"{prefix}_a{i}") for i in range(opts.authors))))
    readers = list(await asyncio.gather(*(user(f"{prefix}_r{i}") for i in range(opts.readers))))
    followers: dict[str, list[str]] = defaultdict(list)
    edges = [(r, a) for r in readers for a in rng.sample(authors, min(len(authors), rng.randint(3, 8)))]
    sem = asyncio.Semaphore(opts.concurrency)

    async def follow(reader: str, author: str) -> None:
        async with sem:
            response = await http.post("/users/follow", json={"follower_id": reader, "followee_id": author})
        response.raise_for_status()
        followers[author].append(reader)

    await asyncio.gather(*(follow(r, a) for r, a in edges))
    return authors, followers


# --- the load --------------------------------------------------------------------------------------
async def drive(http: httpx.AsyncClient, opts: Options, authors: list[str], readers: list[str], rng: random.Random) -> tuple[Tally, float]:
    tally = Tally()
    kinds, weights = list(MIX), list(MIX.values())
    deadline = time.monotonic() + opts.seconds

    def request() -> tuple[str, str, str, dict[str, Any]] | None:
        kind = rng.choices(kinds, weights)[0]
        if kind in ("like", "impressions") and not tally.posts:
            kind = "feed"
        reader = rng.choice(readers)
        if kind == "feed":
            return kind, "GET", "/feed/", {"params": {"user_id": reader}}
        if kind == "post":
            text = " ".join(rng.choices(WORDS, k=8))
            return kind, "POST", "/posts/", {"json": {"user_id": rng.choice(authors), "content": f"load: {text}"}}
        if kind == "like":
            post_id = rng.choice(tally.posts)["post_id"]
            return kind, "POST", f"/posts/{post_id}/like", {"json": {"user_id": reader}}
        post_ids = list({rng.choice(tally.posts)["post_id"] for _ in range(5)})
        return kind, "POST", "/impressions", {"json": {"user_id": reader, "post_ids": post_ids}}

    async def worker() -> None:
        while time.monotonic() < deadline and tally.requests < opts.max_requests:
            tally.requests += 1
            kind, method, path, kwargs = request()  # type: ignore[misc]
            started = time.perf_counter()
            try:
                response = await http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                tally.errors[kind].append(f"{method} {path}: {exc!r}")
                continue
            tally.latencies[kind].append(time.perf_counter() - started)
            if response.status_code not in EXPECTED[kind]:
                tally.errors[kind].append(f"{method} {path} -> {response.status_code}: {response.text[:200]}")
                continue
            body = response.json()
            if kind == "post":
                tally.posts.append(body)
            elif kind == "like" and response.status_code == 201:
                tally.new_likes[body["post_id"]] += 1
            elif kind == "impressions":
                tally.impressions += body["recorded"]
            elif kind == "feed" and body["fallbacks"]:
                tally.degraded_feeds += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(opts.concurrency)))
    return tally, time.monotonic() - started


# --- nothing lost ----------------------------------------------------------------------------------
def lost(lab: LabClient, tally: Tally, followers: dict[str, list[str]], vectors_before: int, impressions_before: int) -> dict[str, int]:
    """What is still missing, by kind (all zero: nothing lost)."""
    ids = [p["post_id"] for p in tally.posts]
    in_sql = lab.store.get_posts(ids)
    cap = lab.settings.mailbox_cap
    expected: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for post in tally.posts:
        if post["delivery"] == "push":
            score = in_sql[post["post_id"]].created_at.timestamp() if post["post_id"] in in_sql else 0.0
            for reader in followers[post["user_id"]]:
                expected[reader].append((score, post["post_id"]))
    pipe = lab.redis.pipeline(transaction=False)
    wanted: list[str] = []
    for reader, entries in expected.items():
        for _, post_id in sorted(entries, reverse=True)[:cap]:  # mailboxes keep the newest `cap`
            pipe.zscore(f"feed:{reader}", post_id)
            wanted.append(post_id)
    mailbox_missing = sum(score is None for score in pipe.execute())
    # the run's likes are the only likes on its posts, so the SQL count must match exactly
    fresh = lab.store.get_posts(list(tally.new_likes))
    likes_missing = sum(abs(n - (fresh[p].like_count if p in fresh else 0)) for p, n in tally.new_likes.items())
    vectors = lab.inspect("vectors", limit=1)["count"] - vectors_before
    impressions = lab.inspect("impressions", limit=1)["count"] - impressions_before
    return {
        "posts_not_in_sql": len(ids) - len(in_sql),
        "mailbox_entries_missing": mailbox_missing,
        "vectors_missing": max(0, len(ids) - vectors),
        "likes_not_counted": likes_missing,
        "impressions_not_loaded": max(0, tally.impressions - impressions),
        "outbox_backlog": lab.inspect("outbox", limit=1)["backlog"],
    }


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def summarize(tally: Tally, seconds: float, missing: dict[str, int], drain_seconds: float) -> dict[str, Any]:
    ops = {
        kind: {
            "requests": len(tally.latencies[kind]) + sum(1 for e in tally.errors[kind] if "->" not in e),
            "throughput_per_s": round(len(tally.latencies[kind]) / seconds, 1),
            "p50_ms": round(percentile(tally.latencies[kind], 50), 1),
            "p99_ms": round(percentile(tally.latencies[kind], 99), 1),
            "errors": len(tally.errors[kind]),
        }
        for kind in MIX
    }
    total = sum(len(v) for v in tally.latencies.values())
    return {
        "seconds": round(seconds, 1),
        "requests": total,
        "throughput_per_s": round(total / seconds, 1),
        "errors": sum(len(v) for v in tally.errors.values()),
        "error_samples": [e for v in tally.errors.values() for e in v[:3]],
        "degraded_feeds": tally.degraded_feeds,
        "acknowledged": {"posts": len(tally.posts), "likes": sum(tally.new_likes.values()), "impressions": tally.impressions},
        "operations": ops,
        "lost": missing,
        "drain_seconds": round(drain_seconds, 1),
        "nothing_lost": not any(missing.values()),
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"## bench.load: {report['seconds']} s, {report['requests']} requests, "
        f"{report['throughput_per_s']} req/s, {report['errors']} errors",
        "",
        "| operation | requests | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, op in report["operations"].items():
        lines.append(f"| {kind} | {op['requests']} | {op['throughput_per_s']} | {op['p50_ms']} | {op['p99_ms']} | {op['errors']} |")
    ack = report["acknowledged"]
    lines += [
        "",
        f"acknowledged: {ack['posts']} posts, {ack['likes']} new likes, {ack['impressions']} impressions; "
        f"degraded feeds (a fallback named): {report['degraded_feeds']}",
        f"nothing lost: {report['nothing_lost']} (checked after {report['drain_seconds']} s of drain) "
        + json.dumps(report["lost"]),
    ]
    lines += [f"  error: {e}" for e in report["error_samples"]]
    return "\n".join(lines)


def run(opts: Options) -> dict[str, Any]:
    """Set up, load, drain and check; returns the report (see ``render``)."""
    if not 0 < opts.seconds <= MAX_SECONDS:
        raise SystemExit(f"--seconds must be in (0, {MAX_SECONDS}]")
    if not 0 < opts.concurrency <= MAX_CONCURRENCY:
        raise SystemExit(f"--concurrency must be in (0, {MAX_CONCURRENCY}]")
    settings = Settings(data_dir=opts.data_dir) if opts.data_dir else Settings()
    try:
        lab = connect(settings)
    except LabError as exc:
        raise SystemExit(str(exc)) from exc
    with lab:
        require_loopback(lab.info.api_url)
        require_loopback(lab.info.redis_url)
        rng = random.Random(opts.seed)
        vectors_before = lab.inspect("vectors", limit=1)["count"]
        impressions_before = lab.inspect("impressions", limit=1)["count"]

        async def main() -> tuple[Tally, float, list[str], dict[str, list[str]]]:
            limits = httpx.Limits(max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency)
            async with httpx.AsyncClient(base_url=lab.info.api_url, timeout=30, limits=limits) as http:
                authors, followers = await make_users(http, opts, rng)
                readers = sorted({r for rs in followers.values() for r in rs})
                tally, seconds = await drive(http, opts, authors, readers, rng)
            return tally, seconds, authors, followers

        tally, seconds, _authors, followers = asyncio.run(main())
        drain_started = time.monotonic()
        while True:
            missing = lost(lab, tally, followers, vectors_before, impressions_before)
            if not any(missing.values()) or time.monotonic() - drain_started > opts.drain_seconds:
                break
            time.sleep(1.0)
        return summarize(tally, seconds, missing, time.monotonic() - drain_started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help=f"how long to hold the load (max {MAX_SECONDS})")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--max-requests", type=int, default=500_000, help="stop after this many requests")
    parser.add_argument("--authors", type=int, default=20)
    parser.add_argument("--readers", type=int, default=80)
    parser.add_argument("--drain-seconds", type=float, default=120.0, help="how long to wait for the workers to catch up")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None, help="the stack's data dir (default: FEEDLAB_DATA_DIR)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    opts = Options(
        seconds=args.seconds, concurrency=args.concurrency, max_requests=args.max_requests, authors=args.authors,
        readers=args.readers, drain_seconds=args.drain_seconds, seed=args.seed, data_dir=args.data_dir,
    )  # fmt: skip
    report = run(opts)
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 and report["nothing_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())

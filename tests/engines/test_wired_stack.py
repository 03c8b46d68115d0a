"""The compose file's services on the real engines, proven over HTTP.

``wired_stack`` (conftest) starts our services and init jobs from ``compose/docker-compose.yml`` as
processes against Kafka, Pinot, Jaeger, SeaweedFS (for MinIO), MariaDB (for TiDB), a redis-server and
Prometheus. Qdrant's server cannot be built here; a test double answers its REST API (see
``qdrant_standin``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis

from labcore.adapters.impressions.redis_recent import seen_key
from tests.e2e.test_walkthrough import walkthrough_script
from tests.engines.compose_stack import INIT_JOBS, ComposeStack
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "compose" / "monitoring" / "grafana" / "dashboards" / "feed.json"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(wired_stack: ComposeStack) -> httpx.Client:
    with httpx.Client(base_url=wired_stack.url("api"), timeout=30) as client:
        yield client


def test_walkthrough_steps_1_to_7_run_verbatim(wired_stack: ComposeStack) -> None:
    script = walkthrough_script(wired_stack.url("api"), wired_stack.url("feast-feature-store"))
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"status":"following"' in out and '"status":"liked"' in out
    assert "GET media -> 200 image/png" in out  # a presigned URL served by the S3 server
    assert '"candidates_social": 1' in out
    feast = json.loads(out[out.rindex("\n{\n") :])
    names = feast["metadata"]["feature_names"]
    created = feast["results"][names.index("created_at")]
    assert all(s == "PRESENT" for s in created["statuses"]), created


def test_health_names_every_engine_up(api: httpx.Client) -> None:
    health = api.get("/health").json()
    assert health["profile"] == "compose"
    assert health["components"] == {name: "ok" for name in health["components"]}, health
    assert health["outbox_backlog"] == 0


def new_user(api: httpx.Client, name: str) -> str:
    response = api.post("/users/", json={"username": name, "display_name": name})
    assert response.status_code == 201, response.text
    return response.json()["user_id"]


def test_a_seen_post_leaves_the_feed_answered_by_pinot(wired_stack: ComposeStack, api: httpx.Client) -> None:
    author, reader = new_user(api, "pinot_author"), new_user(api, "pinot_reader")
    api.post("/users/follow", json={"follower_id": reader, "followee_id": author}).raise_for_status()
    post = api.post("/posts/", json={"user_id": author, "content": "Seen once, gone for a day."}).json()

    def feed() -> dict:
        return api.get("/feed/", params={"user_id": reader}).json()

    wait_for(lambda: post["post_id"] in {i["post_id"] for i in feed()["items"]}, "the post reaches the feed")
    assert api.post("/impressions", json={"user_id": reader, "post_ids": [post["post_id"]]}).status_code == 202
    # Redis's recent set would hide the post at once; empty it so only Pinot can answer "seen"
    engine_redis = redis.Redis(port=wired_stack.book.resolve("redis", 6379))
    pinot_answered = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not pinot_answered:
        engine_redis.delete(seen_key(reader))
        body = feed()
        assert not [f for f in body["fallbacks"] if f.startswith(("olap:", "impressions:"))], body["fallbacks"]
        pinot_answered = post["post_id"] not in {i["post_id"] for i in body["items"]}
        time.sleep(0.5)
    assert pinot_answered, "Pinot never reported the impression (the Kafka -> Pinot ingestion is broken)"


def not_ready_detail(stack: ComposeStack, api: httpx.Client) -> Callable[[], str]:
    """What to look at when the world never catches up: the last health report (each group's
    backlog), which services have exited, and the workers' log tails."""

    def detail() -> str:
        health = api.get("/health").text
        exited = {name: proc.popen.returncode for name, proc in stack.processes.items()
                  if proc.popen is not None and proc.popen.poll() is not None and name not in INIT_JOBS}  # fmt: skip
        tails = "\n".join(f"--- {name}.log\n{stack.processes[name].tail(3000)}"
                          for name in ("embedding-worker", "fanout-worker", "api") if name in stack.processes)  # fmt: skip
        return f"/health: {health}\nexited services: {exited or 'none'}\n{tails}"

    return detail


def test_a_posts_trace_is_read_back_from_jaeger(wired_stack: ComposeStack, api: httpx.Client) -> None:
    # The seed job's world is still being embedded after start-up: a new post's embedding span waits
    # behind that backlog, which is the readiness report's business, not the trace's. (The tiny world
    # is ready within a minute or two of `up`.)
    wait_for(lambda: api.get("/health").json().get("ready"), "the seeded world is caught up", timeout=600, every=2,
             detail=not_ready_detail(wired_stack, api))  # fmt: skip
    author, reader = new_user(api, "traced_author"), new_user(api, "traced_reader")
    api.post("/users/follow", json={"follower_id": reader, "followee_id": author}).raise_for_status()
    response = api.post("/posts/", json={"user_id": author, "content": "A traced post about long fermentation."})
    trace_id = response.headers["X-Trace-Id"]
    wanted = {"POST /posts/", "outbox.publish", "fanout.deliver", "embedding.embed_post"}

    def spans() -> list[dict] | None:
        got = api.get(f"/traces/{trace_id}")
        found = got.json() if got.status_code == 200 else []
        return found if wanted <= {s["name"] for s in found} else None

    found = wait_for(spans, f"Jaeger holds the post's whole trace ({', '.join(sorted(wanted))})", timeout=60, every=1)
    assert {s["trace_id"] for s in found} == {trace_id}
    services = {s["name"]: s["service"] for s in found}
    assert services["fanout.deliver"] == "fanout-worker" and services["embedding.embed_post"] == "embedding-worker"


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]


def test_every_grafana_panel_has_data_in_prometheus(wired_stack: ComposeStack, api: httpx.Client) -> None:
    prometheus = httpx.Client(base_url=wired_stack.prometheus_url, timeout=10)
    targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
    down = {t["labels"]["job"]: t.get("lastError") for t in targets if t["health"] != "up"}
    wait_for(lambda: all(t["health"] == "up" for t in prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]),
             f"every scrape target is up ({down})", timeout=60)  # fmt: skip
    # traffic for every panel: feeds (stages, features, ranking, candidates), posts (fan-out, embedding)
    users = [new_user(api, f"prom_{i}") for i in range(3)]
    for follower in users[1:]:
        api.post("/users/follow", json={"follower_id": follower, "followee_id": users[0]}).raise_for_status()
    for round_ in range(6):
        api.post("/posts/", json={"user_id": users[0], "content": f"metrics round {round_}"}).raise_for_status()
        for user in users:
            api.get("/feed/", params={"user_id": user}).raise_for_status()
        time.sleep(2)

    def empty() -> list[str]:
        missing = []
        exported = set(prometheus.get("/api/v1/metadata").json()["data"])  # what the targets' scrapes declare
        for title, expr in dashboard_queries():
            # "... or vector(0)" panels (counters of failures, zero on a healthy stack) still name
            # metrics our services must export
            for name in re.findall(r"([a-z_:][a-z0-9_:]*)\[", expr):
                if not {name, re.sub(r"_(bucket|total)$", "", name)} & exported:
                    missing.append(f"{title}: no target exports {name}")
            result = prometheus.get("/api/v1/query", params={"query": expr}).json()
            assert result["status"] == "success", (title, expr, result)
            if not result["data"]["result"]:
                missing.append(f"{title}: {expr}")
        return missing

    last: list[str] = []

    def all_have_data() -> bool:
        last[:] = empty()
        return not last

    try:
        wait_for(all_have_data, "every panel's query returns data", timeout=90, every=5)
    except AssertionError:
        pytest.fail("panels without data:\n" + "\n".join(last))


def test_media_round_trip_and_a_tampered_url_refused_by_the_s3_server(api: httpx.Client) -> None:
    author = new_user(api, "media_author")
    png = (ROOT / "docs" / "assets" / "sample.png").read_bytes()
    import base64

    body = {"user_id": author, "content": "a photo", "media_base64": base64.b64encode(png).decode(), "media_type": "image"}
    post = api.post("/posts/", json=body)
    assert post.status_code == 201, post.text
    url = post.json()["media_url"]
    got = httpx.get(url, timeout=10)
    assert got.status_code == 200 and got.content == png
    parts = urlsplit(url)
    query = re.sub(r"(X-Amz-Signature=)([0-9a-f])", lambda m: m[1] + ("0" if m[2] != "0" else "1"), parts.query)
    tampered = urlunsplit(parts._replace(query=query))
    assert tampered != url
    assert httpx.get(tampered, timeout=10).status_code == 403
    other_key = urlunsplit(parts._replace(path=parts.path + "x"))
    assert httpx.get(other_key, timeout=10).status_code == 403

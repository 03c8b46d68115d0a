"""Issue #17, the feed as a reader expects it, over HTTP against a running stack: diversity demotes
instead of dropping, ``/health`` says when the world is not ready yet, the original API's followers
routes, and a post names its author."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from labcore.lab.client import LabClient, connect
from labcore.settings import Settings
from tests.conftest import RunningStack
from tests.e2e.test_feed_pipeline import wait_for

DEFAULTS = Settings()


@pytest.fixture(scope="module")
def lab(running_stack: RunningStack) -> Iterator[LabClient]:
    client = connect(Settings(data_dir=running_stack.data_dir))
    yield client
    client.close()


def new_user(lab: LabClient, name: str) -> str:
    return lab.create_user(f"{name}_{uuid.uuid4().hex[:8]}", name.title())["user_id"]


# --- demote, do not drop ------------------------------------------------------------------------
def test_one_followed_author_with_three_new_posts_gives_all_three(lab: LabClient) -> None:
    reader, author = new_user(lab, "reader"), new_user(lab, "baker")
    lab.follow(reader, author)
    posts = [lab.post(author, f"Sourdough diary, day {day}: the starter doubled overnight.")["post_id"] for day in (1, 2, 3)]
    lab.wait_until_ready(["fanout", "embedding"], progress=False, stall_seconds=60)

    explain = lab.explain(reader, limit=50)
    assert sorted(i["post_id"] for i in explain["items"] if i["user_id"] == author) == sorted(posts)
    mine = {j["post_id"]: j for j in explain["journeys"] if j["post_id"] in posts}
    assert all(j["rank"] is not None and j["dropped"] is None for j in mine.values()), mine
    demoted = [j for j in mine.values() if j["demoted"]]
    assert [j["demoted"] for j in demoted] == ["author_cap"] * (3 - DEFAULTS.max_posts_per_author)
    passed = [j["rank"] for j in explain["journeys"] if j["rank"] is not None and not j["demoted"]]
    assert all(j["rank"] > max(passed) for j in demoted), "a demoted post comes below every other"
    # the out-of-network share is of what is returned: the posts that passed hold at most 30 % discovery
    returned = len(explain["items"])
    discovery_passed = sum(1 for j in explain["journeys"] if j["rank"] and not j["demoted"] and j["source"] == "discovery")
    assert discovery_passed <= DEFAULTS.out_of_network_share * returned


# --- the world says when it is not ready ----------------------------------------------------------
def test_health_reports_the_backlog_after_writes_and_seed_returns_once_it_drained(
    lab: LabClient, running_stack: RunningStack
) -> None:
    lab.wait_until_ready(progress=False, stall_seconds=90)  # whatever earlier tests left behind
    lab.stop("embedding-worker")
    try:
        author = new_user(lab, "prolific")
        for n in range(40):
            lab.post(author, f"Field notes {n}: a heron, two coots and a kingfisher on the canal.")

        def reported() -> dict | None:
            health = lab.health()
            embedding = health["backlog"]["embedding"]["backlog"]
            return health if health["outbox_backlog"] == 0 and embedding >= 40 else None

        health = wait_for(reported, "the embedding backlog is reported", timeout=30)
        assert health["status"] == "catching_up" and health["ready"] is False
        assert health["backlog"]["embedding"]["topic"] == "new-posts"
        assert set(health["backlog"]) == {"fanout", "embedding", "interests", "features", "impressions-loader"}
        status = running_stack.feedlab("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.startswith("catching_up")
        assert re.search(r"backlog embedding\s+\d+ events on new-posts", status.stdout), status.stdout
    finally:
        lab.start("embedding-worker")

    # `feedlab seed` (the world may already be there) returns only once every event is handled
    seeded = running_stack.feedlab("seed", "--size", "tiny", timeout=600)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "ready: every event handled" in seeded.stdout
    after = lab.health()
    assert after["ready"] is True and after["status"] == "ok"
    assert all(group["backlog"] == 0 and group["eta_seconds"] == 0 for group in after["backlog"].values())
    assert lab.inspect("vectors", limit=1)["count"] >= lab.store.counts()["posts"], "every post embedded"


# --- the original API's surface -------------------------------------------------------------------
def test_followers_and_following_are_paginated_and_404_for_an_unknown_user(running_stack: RunningStack) -> None:
    api = httpx.Client(base_url=running_stack.api_url, timeout=10)

    def user(name: str) -> str:
        response = api.post("/users/", json={"username": f"{name.lower().replace(' ', '')}_{uuid.uuid4().hex[:8]}", "display_name": name})
        return response.json()["user_id"]

    star, fans = user("Star"), [user(f"Fan {n}") for n in range(3)]
    for fan in fans:
        assert api.post("/users/follow", json={"follower_id": fan, "followee_id": star}).status_code == 201

    first = api.get(f"/users/{star}/followers", params={"limit": 2}).json()
    assert (first["total"], len(first["items"]), first["offset"], first["next_offset"]) == (3, 2, 0, 2)
    last = api.get(f"/users/{star}/followers", params={"limit": 2, "offset": first["next_offset"]}).json()
    assert len(last["items"]) == 1 and last["next_offset"] is None
    assert [u["user_id"] for u in first["items"] + last["items"]] == fans[::-1], "newest follow first"
    assert first["items"][0]["display_name"] == "Fan 2"
    following = api.get(f"/users/{fans[0]}/following").json()
    assert [u["user_id"] for u in following["items"]] == [star] and following["total"] == 1
    for route in ("followers", "following"):
        assert api.get(f"/users/no-such-user/{route}").status_code == 404
        assert api.get(f"/users/{star}/{route}", params={"limit": 0}).status_code == 422
        assert api.get(f"/users/{star}/{route}", params={"offset": -1}).status_code == 422


def test_a_post_names_its_author(running_stack: RunningStack) -> None:
    api = httpx.Client(base_url=running_stack.api_url, timeout=10)
    username = f"ada_{uuid.uuid4().hex[:8]}"
    author = api.post("/users/", json={"username": username, "display_name": "Ada Lovelace"}).json()["user_id"]
    created = api.post("/posts/", json={"user_id": author, "content": "Notes on the analytical engine."})
    assert created.status_code == 201
    for post in (created.json(), api.get(f"/posts/{created.json()['post_id']}").json()):
        assert (post["user_id"], post["username"], post["display_name"]) == (author, username, "Ada Lovelace")

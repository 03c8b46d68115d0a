"""The API's read-only views inside the stack, which the notebooks are built on."""

from __future__ import annotations

import time

from labcore.lab.client import connect
from labcore.settings import Settings
from tests.conftest import RunningStack
from tests.helpers import wait_for


def test_introspection_shows_each_hop_of_a_post(running_stack: RunningStack) -> None:
    with connect(Settings(data_dir=running_stack.data_dir)) as lab:
        author = lab.create_user("inspect_author")["user_id"]
        reader = lab.create_user("inspect_reader")["user_id"]
        lab.follow(reader, author)
        post = lab.post(author, "Looking inside: a post about sourdough starters and patience.")
        time.sleep(1.5)
        outbox = lab.inspect("outbox", limit=50)
        row = next(r for r in outbox["rows"] if r["payload"].get("post_id") == post["post_id"])
        assert row["topic"] == "new-posts" and row["published_at"]
        events = lab.inspect("events/new-posts", count=50)
        assert any(e["value"]["post_id"] == post["post_id"] and e["key"] == author for e in events)
        mailbox = lab.inspect(f"mailbox/{reader}")
        assert [e["post_id"] for e in mailbox["entries"]] == [post["post_id"]]
        vectors = lab.inspect("vectors", limit=5000)
        assert any(p["post_id"] == post["post_id"] and len(p["vector"]) == 384 for p in vectors["points"])
        assert len(lab.inspect(f"interest/{reader}")["vector"]) == 384
        lab.impressions(reader, [post["post_id"]])
        wait_for(
            lambda: any(r["post_id"] == post["post_id"] for r in lab.inspect("impressions", limit=50)["rows"]),
            "the impression reaches the OLAP store",
            10,
        )
        assert lab.api.get("/introspect/events/nope").status_code == 404

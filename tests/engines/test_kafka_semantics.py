"""Kafka's consumer-group semantics under the compose stack's own processes.

Two fan-out workers (the compose service and a second replica, as ``--scale fanout-worker=2`` would
run) share group ``fanout``: the broker splits the partitions between them. One is SIGKILLed in the
middle of 2,000 posts and started again; then the broker itself is stopped and restarted while posts
keep coming. Every mailbox ends exact: each post of each followed author once, none lost. The posts are
written through the write path with the API's own settings, and the API's outbox relay publishes them.
Marked ``breaks_stack``: it kills parts of the shared stack, so it runs after every other wired test.
"""

from __future__ import annotations

import random
import signal
from collections import defaultdict

import pytest

from labcore.bootstrap import build_stack
from labcore.domain import to_epoch
from labcore.settings import Settings
from labcore.write.posts import WritePath
from tests.engines.compose_stack import ComposeStack
from tests.helpers import wait_for
from tests.integration.test_fanout_no_loss import delivered

AUTHORS, READERS, POSTS = 50, 150, 2000

pytestmark = [pytest.mark.slow, pytest.mark.breaks_stack]


def group_assignment(bootstrap: str, group: str) -> dict[str, set[int]]:
    """Member -> the partitions of ``new-posts`` the broker assigned it, from the group coordinator."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        described = admin.describe_groups([group])
    finally:
        admin.close()
    info = described[group] if isinstance(described, dict) else described[0]
    members = info["members"]
    out: dict[str, set[int]] = {}
    for member in members:
        assignment = member["member_assignment"]
        partitions: set[int] = set()
        if not isinstance(assignment, dict):  # mid-rebalance: no assignment yet (raw empty bytes)
            out[member["member_id"]] = partitions
            continue
        for entry in assignment.get("assigned_partitions", assignment.get("assignment", [])):
            topic, numbers = (entry["topic"], entry["partitions"]) if isinstance(entry, dict) else entry
            if topic == "new-posts":
                partitions |= set(numbers)
        out[member["member_id"]] = partitions
    return out


def test_two_workers_split_partitions_and_a_kill_and_a_broker_restart_lose_nothing(
    wired_stack: ComposeStack, wired_engines
) -> None:  # noqa: ANN001
    settings = Settings(**{k.removeprefix("FEEDLAB_").lower(): v for k, v in wired_stack.env("api").items()
                           if k.startswith("FEEDLAB_")})  # fmt: skip
    stack = build_stack(settings)
    writes = WritePath(stack)
    bootstrap = settings.kafka_bootstrap
    try:
        rng = random.Random(7)
        authors = [writes.create_user(f"k_author{i}", f"Author {i}").id for i in range(AUTHORS)]
        readers = [writes.create_user(f"k_reader{i}", f"Reader {i}").id for i in range(READERS)]
        followers: dict[str, list[str]] = defaultdict(list)
        for reader in readers:
            for author in rng.sample(authors, rng.randint(5, 15)):
                writes.follow(reader, author)
                followers[author].append(reader)
        assert max(len(f) for f in followers.values()) <= settings.celebrity_threshold  # every post is pushed

        second = wired_stack.replica("fanout-worker", "fanout-worker-2", {"FEEDLAB_WORKER_ID": "1"})
        partitions = set(range(settings.event_partitions))
        split = wait_for(lambda: (a := group_assignment(bootstrap, "fanout")) and len(a) == 2 and all(a.values()) and a,
                         "both fan-out workers hold partitions", timeout=60)  # fmt: skip
        mine = list(split.values())
        assert mine[0] and mine[1] and not (mine[0] & mine[1]) and (mine[0] | mine[1]) == partitions, split

        posts = []
        for i in range(POSTS):
            posts.append(writes.create_post(rng.choice(authors), f"kafka post number {i}"))
            if i == POSTS // 4:  # SIGKILL one worker while deliveries are in flight
                wait_for(lambda: delivered(stack, readers) > 0, "deliveries have started", timeout=60, every=0.01)
                wired_stack.processes["fanout-worker"].kill(signal.SIGKILL)
                at_kill = delivered(stack, readers)
                wired_stack.restart("fanout-worker")
            if i == POSTS // 2:  # stop the broker under load: the outbox keeps what is written meanwhile
                wired_engines.handles["kafka"].stop()
            if i == POSTS * 3 // 4:
                assert stack.store.outbox_backlog() > 0, "with the broker down, the outbox must hold the posts"
                wired_engines.handles["kafka"].start()

        expected: dict[str, dict[str, float]] = defaultdict(dict)
        for post in posts:
            for reader in followers[post.author_id]:
                expected[reader][post.id] = to_epoch(post.created_at)
        total = sum(len(v) for v in expected.values())
        assert 0 < at_kill < total, "the kill must land while deliveries are in flight"
        wait_for(lambda: delivered(stack, readers) >= total, "every mailbox has its posts", timeout=180, every=1)
        wait_for(lambda: stack.store.outbox_backlog() == 0, "the outbox is replayed", timeout=60)
        import time

        time.sleep(2)  # a duplicate or a late replay would show up now
        for reader in readers:
            mailbox = dict(stack.mailboxes.entries(reader))
            want = expected[reader]
            assert set(mailbox) == set(want), f"{reader}: lost {set(want) - set(mailbox)}, extra {set(mailbox) - set(want)}"
            assert mailbox == pytest.approx(want)
        assert second.popen is not None and second.popen.poll() is None
    finally:
        stack.close()

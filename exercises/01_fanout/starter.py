"""Exercise 01 — fan-out on write, with the celebrity bypass. The task: README.md next to this file.

Run the tests:   feedlab grade 01          (or: pytest exercises/01_fanout)
Plug it in:      FEEDLAB_FANOUT=exercises.01_fanout.starter:deliver   (in .env, then restart the stack)
"""

from __future__ import annotations

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore
from labcore.domain import PostCreated


def deliver(event: PostCreated, store: SqlStore, mailboxes: RedisMailboxes) -> int:
    """Fan one new post out to its author's followers; return how many mailboxes were written.

    * ``event.delivery == "pull"`` (a celebrity's post): write nothing, return 0 — followers merge
      it in at read time.
    * otherwise: the post id goes into every follower's mailbox with ``event.created_at`` as score.
    """
    raise NotImplementedError(
        "exercise 01: implement deliver(event, store, mailboxes) in exercises/01_fanout/starter.py — "
        "push the post into each follower's mailbox, skip 'pull' (celebrity) posts"
    )

"""Exercise 02 — mailbox regeneration. The task: README.md next to this file.

Run the tests:   feedlab grade 02          (or: pytest exercises/02_mailbox_regeneration)
Plug it in:      FEEDLAB_MAILBOX_READER=exercises.02_mailbox_regeneration.starter:read_mailbox
"""

from __future__ import annotations

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore


def read_mailbox(
    user_id: str, store: SqlStore, mailboxes: RedisMailboxes, *, limit: int, cap: int
) -> list[tuple[str, float]]:
    """The newest ``limit`` ``(post_id, score)`` entries of ``user_id``'s mailbox, newest first.

    A mailbox that is not marked built (never built, or expired) is first rebuilt from the follow
    graph — the newest ``cap`` pushed posts of the authors the user follows — and marked built.
    """
    raise NotImplementedError(
        "exercise 02: implement read_mailbox(user_id, store, mailboxes, limit=, cap=) in "
        "exercises/02_mailbox_regeneration/starter.py — read the mailbox; when it is not built, "
        "rebuild it from the follow graph"
    )

"""Exercise 05 — the user→author affinity feature. The task: README.md next to this file.

Run the tests:   feedlab grade 05          (or: pytest exercises/05_affinity)
Plug it in:      FEEDLAB_AFFINITY=exercises.05_affinity.starter:affinity_score
"""

from __future__ import annotations


def affinity_score(likes_on_author: int, follows_author: bool) -> float:
    """How much a reader engages with an author, in [0, 1): 0 without evidence, saturating with it.

    ``likes_on_author``: the reader's likes on the author's posts (never their own posts);
    ``follows_author``: whether the reader follows the author.
    """
    raise NotImplementedError(
        "exercise 05: implement affinity_score(likes_on_author, follows_author) in "
        "exercises/05_affinity/starter.py — a saturating score in [0, 1) from likes and the follow"
    )

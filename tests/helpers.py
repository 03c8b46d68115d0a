"""The helpers tests share: poll for an asynchronous effect, build unit vectors and journeys.

One place, so a fix to how tests wait (or what a journey looks like) reaches every test. Fakes of
the ports live in ``labcore.testing``, where exercises can use them too.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pytest

from labcore.embeddings import DIM
from labcore.testing import journey_json
from labcore.widgets.write_path import wait_until

if TYPE_CHECKING:
    from labcore.write.posts import WritePath

T = TypeVar("T")

__all__ = ["follow_graph", "journey", "once_across_redis_servers", "unit", "wait_for"]

# One journey as GET /feed/explain returns it: journey("d1", "discovery", retrieval_score=0.9, rank=1).
journey = journey_json


def wait_for(
    condition: Callable[[], T],
    what: str,
    timeout: float = 60.0,
    every: float = 0.2,
    *,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy and return that; fail the test after
    ``timeout`` seconds saying ``what`` never happened, plus ``detail()`` (a log tail, a last reply).

    The loop is the notebooks' own (``labcore.widgets.write_path.wait_until``); a test only turns its
    ``TimeoutError`` into a failure that says what to look at.
    """
    try:
        return wait_until(condition, timeout=timeout, interval=every, what=what)
    except TimeoutError:
        message = f"timed out after {timeout:g}s waiting until {what}"
        raise AssertionError(message + (f"\n{detail()}" if detail else "")) from None


def unit(*weights: float, dim: int = DIM) -> np.ndarray:
    """A float32 unit vector whose first coordinates are ``weights`` (the rest zero), ``dim`` long."""
    vector = np.zeros(dim, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector / np.linalg.norm(vector)



def follow_graph(
    writes: WritePath, authors: int, readers: int, *, seed: int, prefix: str = ""
) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Users written through the write path: ``(author ids, reader ids, followers by author)``.

    Every reader follows authors 0 and 1 — celebrities past any small threshold, pulled at read
    time — and 5 to 15 more at random, so fan-out has both pushed and pulled authors to deliver.
    """
    rng = random.Random(seed)
    author_ids = [writes.create_user(f"{prefix}author{i}", f"Author {i}").id for i in range(authors)]
    reader_ids = [writes.create_user(f"{prefix}reader{i}", f"Reader {i}").id for i in range(readers)]
    followers: dict[str, list[str]] = defaultdict(list)
    for reader in reader_ids:
        for author in {author_ids[0], author_ids[1], *rng.sample(author_ids, rng.randint(5, 15))}:
            writes.follow(reader, author)
            followers[author].append(reader)
    return author_ids, reader_ids, followers


def once_across_redis_servers(request: pytest.FixtureRequest, backend: str) -> None:
    """Contract fixtures run under both Redis servers (``redis_url``); a backend that does not use
    Redis runs once, under the ``embedded`` id, and skips the repeat."""
    if request.node.callspec.params["redis_url"] != "embedded":
        pytest.skip(f"{backend} does not depend on Redis: it runs once, under the embedded id")

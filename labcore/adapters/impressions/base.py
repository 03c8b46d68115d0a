"""The impressions port: which posts has a user *seen* since a point in time.

Only the question is on the port. How impressions get in differs per backend and is not shared:
Pinot consumes the ``impressions`` topic itself, DuckDB is loaded by the impressions worker
(``DuckdbImpressions.insert``), the Redis fallback is written by the API (``RedisRecentImpressions.record``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence


class ImpressionStore(ABC):
    @abstractmethod
    def seen_since(
        self, user_id: str, since_epoch: float, post_ids: Sequence[str] | None = None
    ) -> set[str]:
        """Ids of posts ``user_id`` has seen at or after ``since_epoch`` (epoch seconds).

        With ``post_ids`` the answer is restricted to those posts (the feed passes its candidates).
        Raises ``BackendUnavailable`` when the store cannot answer; the feed then falls back.
        """

    @abstractmethod
    def health(self) -> None:
        """Raise ``BackendUnavailable`` when the store cannot be reached."""

"""Stage 2, impression filtering: drop what the user has *seen* in the last 24 h.

Seen means a client reported it (``POST /impressions``); serving a post is not seeing it. The OLAP
store (DuckDB embedded, Pinot in compose) answers, united with Redis's bounded recent set, which
covers the OLAP store's ingestion lag.

Fallbacks: ``olap:redis-recent`` (OLAP down: the Redis set alone), ``impressions:none`` (both down:
nothing is filtered — better a repeat than nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from labcore.errors import BackendUnavailable
from labcore.feed.journey import Journey

if TYPE_CHECKING:
    from labcore.bootstrap import Stack


def seen(stack: Stack, user_id: str, post_ids: Sequence[str], now: float, fallbacks: list[str]) -> set[str]:
    """Posts the user saw in the window: the OLAP store, plus Redis's recent set.

    The union covers the OLAP store's ingestion lag (an impression reported a moment ago is in
    Redis at once, in DuckDB or Pinot a little later). When the OLAP store is down, Redis's
    bounded set alone answers — the named fallback.
    """
    since = now - stack.settings.impression_window_hours * 3600
    olap_up = True
    try:
        found = stack.impressions.seen_since(user_id, since, post_ids)
    except BackendUnavailable:
        fallbacks.append("olap:redis-recent")
        olap_up, found = False, set()
    try:
        found |= stack.recent_impressions.seen_since(user_id, since, post_ids)
    except BackendUnavailable:
        if not olap_up:
            fallbacks[-1] = "impressions:none"
    return found


def filter_seen(stack: Stack, user_id: str, journeys: list[Journey], now: float, fallbacks: list[str]) -> list[Journey]:
    """Mark the seen journeys ``filtered = "seen_in_24h"``; return the survivors."""
    already = seen(stack, user_id, [j.post_id for j in journeys], now, fallbacks)
    for journey in journeys:
        if journey.post_id in already:
            journey.filtered = "seen_in_24h"
    return [j for j in journeys if j.filtered is None]

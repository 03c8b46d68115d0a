"""``POST /impressions``: a client reports which posts it actually *showed* a user.

``record_impressions`` writes the user's recent set in Redis first — the feed's filter sees the
impressions within milliseconds, before any OLAP store has loaded them — and then publishes one
``ImpressionLogged`` per post on the ``impressions`` topic.

If the event log refuses an impression it raises ``BackendUnavailable`` and the route answers 503:
the impressions are not silently dropped, the client retries the request (a retry is harmless, a
post seen twice is still one post seen), and meanwhile the Redis set already filters them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from labcore.adapters.events.base import EventLog, Outgoing
from labcore.domain import TOPIC_IMPRESSIONS, ImpressionLogged
from labcore.errors import BackendUnavailable, InvalidInput

if TYPE_CHECKING:  # neither is needed to import this module (the API imports it)
    from labcore.adapters.impressions.redis_recent import RedisRecentImpressions

log = logging.getLogger(__name__)

MAX_IMPRESSIONS_PER_REQUEST = 500


def check_impressions(user_id: Any, post_ids: Any) -> list[str]:
    """The post ids of a valid report, duplicates dropped; raises ``InvalidInput`` with every reason."""
    reasons: list[str] = []
    if not isinstance(user_id, str) or not user_id.strip():
        reasons.append("user_id must be a non-empty string")
    if isinstance(post_ids, (str, bytes)) or not isinstance(post_ids, Sequence):
        reasons.append("post_ids must be a list of post ids")
        post_ids = []
    elif not post_ids:
        reasons.append("post_ids must not be empty")
    elif len(post_ids) > MAX_IMPRESSIONS_PER_REQUEST:
        reasons.append(f"at most {MAX_IMPRESSIONS_PER_REQUEST} post_ids per request, got {len(post_ids)}")
    bad = [i for i, post_id in enumerate(post_ids) if not isinstance(post_id, str) or not post_id.strip()]
    if bad:
        shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
        reasons.append(f"post_ids must be non-empty strings (bad at index {shown})")
    if reasons:
        raise InvalidInput("; ".join(reasons))
    return list(dict.fromkeys(post_ids))


def record_impressions(
    events: EventLog,
    recent: RedisRecentImpressions,
    user_id: str,
    post_ids: Sequence[str],
    now: float | None = None,
) -> int:
    """Record that ``user_id`` was shown ``post_ids``; returns how many distinct posts were recorded.

    Raises ``InvalidInput`` for a bad report and ``BackendUnavailable`` when the event log cannot
    take the impressions (answer 503: the client retries). A Redis failure alone is not fatal: the
    events still reach the OLAP store, only the millisecond head start is lost.
    """
    unique = check_impressions(user_id, post_ids)
    seen_at = round(time.time() if now is None else now, 3)
    impressions = [ImpressionLogged(user_id, post_id, seen_at) for post_id in unique]
    try:
        recent.record(impressions, now=seen_at)
    except BackendUnavailable as exc:
        log.warning("recent impressions of %s not cached in Redis: %s", user_id, exc)
    events.publish_many([Outgoing(TOPIC_IMPRESSIONS, i.key, i.to_dict()) for i in impressions])  # one round trip
    return len(impressions)

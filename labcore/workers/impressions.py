"""Consumer group ``impressions-loader`` on ``impressions``: the embedded profile's OLAP loader.

``ImpressionHandler`` inserts each batch into DuckDB in one call. (In the compose profile Pinot
consumes the topic itself, so no worker runs.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from labcore.domain import ImpressionLogged, Record

if TYPE_CHECKING:  # neither is needed to import this module (the API imports it)
    from labcore.adapters.impressions.duckdb import DuckdbImpressions

log = logging.getLogger(__name__)


class ImpressionHandler:
    """The impressions loader's batch handler (plugged into ``ConsumerLoop`` over ``impressions``)."""

    def __init__(self, olap: DuckdbImpressions) -> None:
        self.olap = olap
        self.impressions = 0  # decoded and handed to the store
        self.inserted = 0  # new rows (redelivered events are not)
        self.skipped = 0  # malformed records

    def __call__(self, records: Sequence[Record]) -> None:
        batch: list[ImpressionLogged] = []
        for record in records:
            try:
                batch.append(ImpressionLogged.from_dict(record.value))
            except (TypeError, ValueError, AttributeError) as exc:
                # A record that can never decode would otherwise be redelivered forever and
                # block its partition: skip it, loudly.
                self.skipped += 1
                log.warning("skipping malformed impression %s/%s@%s: %s",
                            record.topic, record.partition, record.offset, exc)  # fmt: skip
        if batch:
            self.inserted += self.olap.insert(batch)
            self.impressions += len(batch)

"""KafkaEventLog without a broker: it must fail fast and in the lab's own terms.

kafka-python bootstraps eagerly in every client's constructor and raises ``KafkaTimeoutError`` after
``bootstrap_timeout_ms``; the adapter turns that into ``BackendUnavailable`` naming the address.
"""

from __future__ import annotations

import time

import pytest
from kafka.errors import KafkaTimeoutError

from labcore.adapters.events.kafka import KafkaEventLog
from labcore.engines.process import free_port
from labcore.errors import BackendUnavailable


def test_missing_broker_fails_within_the_bootstrap_timeout() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()

    with pytest.raises(BackendUnavailable) as caught:
        log = KafkaEventLog(bootstrap, partitions=4, bootstrap_timeout_ms=1000)
        log.publish("new-posts", "author-1", {"n": 1})  # not reached: the constructor raises

    elapsed = time.monotonic() - started
    assert elapsed < 10, f"took {elapsed:.1f} s to give up"  # correctness bound, not a benchmark
    assert caught.value.component == "event-log"
    assert str(caught.value) == (
        f"event-log unavailable: no Kafka broker at {bootstrap} within 1000 ms"
    )
    assert isinstance(caught.value.__cause__, KafkaTimeoutError)


def test_partitions_must_be_positive() -> None:
    with pytest.raises(ValueError):
        KafkaEventLog("127.0.0.1:9", partitions=0)

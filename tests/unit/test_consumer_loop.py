"""``ConsumerLoop``'s own counters: what a worker handled, and the CPU its thread spent doing it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from labcore.domain import Record
from labcore.testing import MemoryEventLog
from labcore.workers.loop import ConsumerLoop
from tests.helpers import wait_for


def run_over(handle, events: int) -> ConsumerLoop:
    log = MemoryEventLog()
    for i in range(events):
        log.publish("topic", f"k{i}", {"i": i})
    loop = ConsumerLoop(log, "topic", "group", "consumer-0", handle, batch_size=1, poll_timeout_ms=10)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: loop.stats.handled >= events, f"{events} events handled", 10, every=0.01)
    finally:
        stop.set()
        thread.join(timeout=5)
    return loop


def busy(records: Sequence[Record]) -> None:
    until = time.thread_time() + 0.05
    while time.thread_time() < until:
        pass


def test_the_loop_counts_the_cpu_its_thread_spends_handling() -> None:
    loop = run_over(busy, 3)
    assert loop.stats.handled == 3
    assert loop.stats.cpu_seconds >= 0.15


def test_waiting_in_a_handler_is_not_cpu() -> None:
    loop = run_over(lambda records: time.sleep(0.1), 3)
    assert loop.stats.handled == 3
    assert loop.stats.cpu_seconds < 0.1  # 0.3 s of wall time, almost none of it on the CPU

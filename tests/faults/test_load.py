"""``bench/load.py`` for 10 s against the fault suite's stack: zero errors, nothing lost."""

from __future__ import annotations

import pytest

from bench import load
from tests.conftest import RunningStack


@pytest.mark.slow
def test_ten_seconds_of_mixed_load_has_no_errors_and_loses_nothing(fault_stack: RunningStack) -> None:
    report = load.run(load.Options(seconds=10, concurrency=8, drain_seconds=90, data_dir=fault_stack.data_dir))
    print(load.render(report))
    assert report["errors"] == 0, report["error_samples"]
    assert report["degraded_feeds"] == 0
    assert all(op["requests"] > 0 for op in report["operations"].values())
    assert report["acknowledged"]["posts"] > 0 and report["acknowledged"]["impressions"] > 0
    assert report["nothing_lost"], report["lost"]


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://example.com", "http://0.0.0.0:8000"])
def test_the_load_driver_refuses_anything_but_loopback(url: str) -> None:
    with pytest.raises(SystemExit, match="loopback|resolve"):
        load.require_loopback(url)


def test_the_load_driver_accepts_loopback() -> None:
    load.require_loopback("http://127.0.0.1:8000")
    load.require_loopback("http://localhost:8000")

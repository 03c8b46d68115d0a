"""``labcore.testing.FakeLab`` cannot drift from the client it stands in for.

The port fakes run the real backends' contract suites (tests/contract); ``FakeLab`` has no server
to share a suite with, so this checks its surface instead: every public call it offers is a
``LabClient`` call with the same parameters, and its answers have the keys the widgets read.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from labcore.lab.client import LabClient
from labcore.testing import FakeLab
from labcore.widgets.feed import DRILL_FALLBACKS


@pytest.mark.parametrize("name", [n for n in vars(FakeLab) if not n.startswith("_") and callable(getattr(FakeLab, n))])
def test_every_fake_call_is_a_client_call_with_the_same_parameters(name: str) -> None:
    assert hasattr(LabClient, name), f"LabClient has no {name}()"
    fake = list(inspect.signature(getattr(FakeLab, name)).parameters)
    real = list(inspect.signature(getattr(LabClient, name)).parameters)
    assert fake == real


def test_a_like_moves_the_interest_vector_only_after_the_lag() -> None:
    lab = FakeLab(vectors={"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])}, interest=np.array([1.0, 0.0]))
    assert lab.like("u", "b") == {"status": "liked"} and lab.like("u", "b") == {"status": "already_liked"}
    assert lab.inspect("interest/u")["vector"] == [1.0, 0.0]  # the worker has not run yet
    moved = np.array(lab.inspect("interest/u")["vector"])
    assert moved[1] > 0 and np.isclose(np.linalg.norm(moved), 1.0)
    assert [j["post_id"] for j in lab.explain("u")["journeys"]] == ["a", "b"]


def test_reported_impressions_leave_the_feed_at_once_and_reach_the_olap_rows_later() -> None:
    lab = FakeLab(["p1", "p2"], olap_lag=2, now=100.0)
    lab.impressions("u", ["p1"])
    assert [i["post_id"] for i in lab.feed("u")["items"]] == ["p2"]
    assert lab.inspect("impressions")["rows"] == []
    assert lab.inspect("impressions")["rows"] == [{"user_id": "u", "post_id": "p1", "seen_at": 100.0}]
    assert {j["post_id"]: j["filtered"] for j in lab.explain("u")["journeys"]} == {"p1": "seen_in_24h", "p2": None}


def test_a_stopped_service_shows_its_fallback() -> None:
    lab = FakeLab(["p1"])
    for service, fallback in DRILL_FALLBACKS.items():
        lab.stop(service)
        assert lab.feed("u")["fallbacks"] == [fallback]
        lab.start(service)
        assert lab.feed("u")["fallbacks"] == []

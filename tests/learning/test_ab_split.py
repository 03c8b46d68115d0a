"""The A/B split is a pure function of the user id (and the experiment's name)."""

from __future__ import annotations

import pytest

from labcore.ranking.ab_split import AbSplit, bucket

USERS = [f"user-{i}" for i in range(2000)]


def test_the_same_user_always_gets_the_same_arm() -> None:
    split = AbSplit("formula-v1", "learned-v1", 0.5)
    first = [split.arm(u) for u in USERS]
    assert first == [AbSplit("formula-v1", "learned-v1", 0.5).arm(u) for u in USERS]


@pytest.mark.parametrize("share", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_the_share_of_treated_users_matches(share: float) -> None:
    split = AbSplit("formula-v1", "learned-v1", share)
    treated = sum(split.arm(u) == "learned-v1" for u in USERS) / len(USERS)
    assert treated == pytest.approx(share, abs=0.04)


def test_no_treatment_means_control_for_everyone() -> None:
    assert {AbSplit("formula-v1").arm(u) for u in USERS} == {"formula-v1"}


def test_each_experiment_draws_its_own_users() -> None:
    a = {u for u in USERS if bucket(u, "learned-v1") < 0.5}
    b = {u for u in USERS if bucket(u, "learned-v2") < 0.5}
    assert 0.35 < len(a & b) / len(a) < 0.65  # independent halves, not the same half again


def test_a_share_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError):
        AbSplit("formula-v1", "learned-v1", 1.5)

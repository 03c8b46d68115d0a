"""The A/B split of the ranking service: which model version scores a user's feed.

A user's arm is a pure function of their id: ``bucket(user_id)`` is a hash mapped to [0, 1), and users
below ``share`` get the treatment. No assignment table, no state — every replica of the ranking
service, every request and every re-run agree, and a user never flips between arms mid-experiment
(which would blur the comparison). The treatment's name salts the hash, so each new experiment draws
a fresh half of the users instead of always the same ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def bucket(user_id: str, salt: str) -> float:
    """A stable, uniform number in [0, 1) for ``user_id`` in the experiment named ``salt``."""
    digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class AbSplit:
    """``control`` for everyone, or ``treatment`` for a ``share`` of users (by id hash)."""

    control: str
    treatment: str | None = None
    share: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"treatment share must be in [0, 1], not {self.share}")

    def arm(self, user_id: str) -> str:
        """The model version that scores ``user_id``'s feed."""
        if self.treatment is None or bucket(user_id, self.treatment) >= self.share:
            return self.control
        return self.treatment

    @property
    def versions(self) -> tuple[str, ...]:
        return (self.control,) if self.treatment is None else (self.control, self.treatment)

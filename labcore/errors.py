"""The lab's own exceptions.

Adapters translate vendor errors (redis-py, SQLAlchemy, kafka-python, minio, ...) into these at the
boundary, raised ``from`` the original, so the rest of the code reasons about *what* went wrong,
never *which library* said so. The API maps them to HTTP statuses in one place.
"""

from __future__ import annotations


class LabError(Exception):
    """Base of every error the lab raises on purpose."""


class InvalidInput(LabError):
    """The request is well-formed but not acceptable (self-follow, empty content, bad media...)."""


class NotFound(LabError):
    """A referenced user, post or object does not exist."""


class Conflict(LabError):
    """The request clashes with existing state (a username already taken)."""


class TooLarge(InvalidInput):
    """A body or decoded payload exceeds its configured limit."""


class Forbidden(LabError):
    """A signature is wrong or expired."""


class BackendUnavailable(LabError):
    """A backend (Redis, SQL, the event log, ...) cannot be reached; callers pick a fallback.

    ``reason`` is a metric label for why (``timeout``, ``unreachable``, ``http_503``, ...).
    """

    def __init__(self, component: str, message: str, reason: str = "unreachable") -> None:
        super().__init__(f"{component} unavailable: {message}")
        self.component = component
        self.reason = reason

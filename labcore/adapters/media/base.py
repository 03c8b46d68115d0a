"""The media port: store bytes under a key and hand out an expiring URL to them."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod

from labcore.errors import InvalidInput

# Keys are ours (``posts/<uuid>.png``), but check anyway: a key must never escape its folder.
_KEY = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*\.[a-z0-9]{1,8}$")


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key:
        raise InvalidInput(f"invalid media key: {key!r}")
    return key


class MediaStore(ABC):
    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``; overwrites."""

    @abstractmethod
    def get(self, key: str) -> tuple[bytes, str]:
        """The bytes and content type under ``key``; raises ``NotFound``."""

    @abstractmethod
    def url(self, key: str, expires_seconds: int) -> str:
        """A URL a browser can GET for ``expires_seconds``, with no other credentials."""

    @abstractmethod
    def health(self) -> None:
        """Raise ``BackendUnavailable`` when the store cannot be reached."""

"""Signed, expiring media URLs for the local media store.

S3 and MinIO hand out presigned URLs; the local store needs the same property — a browser can fetch
a file for a while with no other credentials, and nobody can forge or extend that permission — so
the API signs ``(key, expires_at)`` with an HMAC whose key only the server knows.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from labcore.errors import Forbidden


class UrlSigner:
    """HMAC-SHA256 over ``"<path key>\\n<expires_at>"`` with a server-side secret."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("the signing key must not be empty")
        self._key = key.encode()

    def sign(self, path_key: str, expires_at: int) -> str:
        """The hex signature granting access to ``path_key`` until epoch second ``expires_at``."""
        message = f"{path_key}\n{int(expires_at)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(
        self, path_key: str, expires_at: int, signature: str, now: float | None = None
    ) -> None:
        """Return if ``signature`` is ours and not expired; raise ``Forbidden`` otherwise.

        The signature is checked first, so a forged URL learns nothing about expiry. The compare is
        constant-time so response timing does not leak how many leading characters were right.
        """
        expected = self.sign(path_key, expires_at).encode()
        if not hmac.compare_digest(expected, signature.encode()):
            raise Forbidden("bad signature")
        if (time.time() if now is None else now) > expires_at:
            raise Forbidden("signature expired")

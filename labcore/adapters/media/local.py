"""Media in a local folder, served by the API through HMAC-signed URLs (the embedded profile).

Files live at ``root/<key>`` so students can open them; the content type sits beside each file in
a ``<key>.type`` sidecar (keys have exactly one dot, so a sidecar name can never be a key). Writes
go to a temp file then ``os.replace``: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from labcore.adapters.media.base import MediaStore, check_key
from labcore.adapters.media.signing import UrlSigner
from labcore.errors import BackendUnavailable, InvalidInput, NotFound

_SIDECAR = ".type"
_DEFAULT_TYPE = "application/octet-stream"


class LocalMedia(MediaStore):
    def __init__(self, root: Path, signer: UrlSigner, base_url: str) -> None:
        self._root = Path(root)
        self._signer = signer
        self._base_url = base_url.rstrip("/")

    def ensure_root(self) -> None:
        """Create the media folder (kept out of ``__init__``: constructing touches nothing)."""
        self._root.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Type first: a reader that finds the new bytes also finds their type.
            _write_atomically(path.with_name(path.name + _SIDECAR), content_type.encode())
            _write_atomically(path, data)
        except OSError as exc:
            raise BackendUnavailable("media", f"cannot write {key}: {exc}") from exc

    def get(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound(f"media {key} not found") from exc
        except OSError as exc:
            raise BackendUnavailable("media", f"cannot read {key}: {exc}") from exc
        try:
            content_type = path.with_name(path.name + _SIDECAR).read_text().strip()
        except OSError:
            content_type = ""
        return data, content_type or _DEFAULT_TYPE

    def url(self, key: str, expires_seconds: int) -> str:
        check_key(key)
        expires_at = int(time.time()) + int(expires_seconds)
        signature = self._signer.sign(key, expires_at)
        # check_key allows only [A-Za-z0-9_-./], so the key needs no URL quoting.
        return f"{self._base_url}/media/{key}?expires={expires_at}&signature={signature}"

    def open_signed(self, key: str, expires: int, signature: str) -> tuple[bytes, str]:
        """What GET /media/{key} serves: verify the URL's signature, then return bytes and type."""
        check_key(key)
        self._signer.verify(key, expires, signature)
        return self.get(key)

    def health(self) -> None:
        # os.access lies for root and on some mounts; creating a real temp file does not.
        try:
            with tempfile.TemporaryFile(dir=self._root):
                pass
        except OSError as exc:
            message = f"{self._root} is not a writable folder: {exc}"
            raise BackendUnavailable("media", message) from exc

    def _path(self, key: str) -> Path:
        """The file for ``key``, refusing anything that resolves outside root (``..``, symlinks)."""
        check_key(key)
        root = self._root.resolve()
        path = (root / key).resolve()
        if not path.is_relative_to(root):
            raise InvalidInput(f"invalid media key: {key!r}")
        return path


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            tmp_file.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

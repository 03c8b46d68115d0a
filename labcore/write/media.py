"""Turn an uploaded ``media_base64`` string into checked bytes before anything stores them.

Clients send media inline as base64 (``base64 < photo.png`` wraps lines, browsers send ``data:``
URLs), so both are accepted. The declared type is never trusted: the real type comes from the
file's magic bytes, and only formats every browser can show are allowed, so a stored "image" is one.
Size is checked on the encoded length first, so an oversized upload is refused without decoding.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from labcore.domain import NewMedia
from labcore.errors import InvalidInput, TooLarge

# (name, matches(data), content_type, extension)
_Sniffer = tuple[str, Callable[[bytes], bool], str, str]

# MP4 video major brands. HEIC/AVIF images use the same ftyp box, hence an allowlist.
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash", b"M4V "
}
_EBML = b"\x1a\x45\xdf\xa3"

# media_type -> the formats it accepts, in the order their names appear in error messages.
_FORMATS: dict[str, list[_Sniffer]] = {
    "image": [
        ("png", lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"), "image/png", "png"),
        ("jpeg", lambda d: d.startswith(b"\xff\xd8\xff"), "image/jpeg", "jpg"),
        ("gif", lambda d: d[:6] in (b"GIF87a", b"GIF89a"), "image/gif", "gif"),
        ("webp", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", "image/webp", "webp"),
    ],
    "video": [
        ("mp4", lambda d: d[4:8] == b"ftyp" and d[8:12] in _MP4_BRANDS, "video/mp4", "mp4"),
        # WebM is Matroska (EBML magic) whose header declares DocType "webm"; plain .mkv is refused.
        ("webm", lambda d: d[:4] == _EBML and b"webm" in d[:64], "video/webm", "webm"),
    ],
}


def decode_media(media_base64: str, media_type: str, max_bytes: int) -> NewMedia:
    """Decode, size-check and sniff an upload; raise ``InvalidInput`` or ``TooLarge``."""
    formats = _FORMATS.get(media_type)
    if formats is None:
        raise InvalidInput(f"media_type must be one of {', '.join(_FORMATS)}, got {media_type!r}")

    encoded = _strip_data_url(media_base64)
    encoded = "".join(encoded.split())  # newlines from `base64 < file`, stray spaces
    # Exact decoded size of valid base64: 3 bytes per 4 characters, minus padding.
    if len(encoded) * 3 // 4 - encoded[-2:].count("=") > max_bytes:
        raise TooLarge(f"media is larger than {max_bytes} bytes")
    try:
        # validate=True: a character outside the alphabet is an error, not silently skipped.
        data = base64.b64decode(encoded, validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII characters
        raise InvalidInput("media_base64 is not valid base64") from exc
    if len(data) > max_bytes:
        raise TooLarge(f"media is larger than {max_bytes} bytes")

    for _name, matches, content_type, extension in formats:
        if matches(data):
            return NewMedia(data=data, content_type=content_type, extension=extension)
    names = ", ".join(name for name, *_ in formats)
    raise InvalidInput(f"media is not a supported {media_type} ({names})")


def _strip_data_url(value: str) -> str:
    """``data:image/png;base64,AAAA`` → ``AAAA``; the declared MIME type is ignored (we sniff)."""
    if not value.startswith("data:"):
        return value
    header, sep, payload = value.partition(",")
    if not sep or not header.endswith(";base64"):
        raise InvalidInput("media_base64 data: URL must be base64-encoded (data:<mime>;base64,...)")
    return payload

"""decode_media: strict base64, size limits before and after decoding, type sniffed from bytes."""

from __future__ import annotations

import base64

import pytest

from labcore.errors import InvalidInput, TooLarge
from labcore.write.media import decode_media

# Minimal headers: just enough bytes for the magic-number sniff, padded to look like a file.
PAD = bytes(range(256)) * 2
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + PAD
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + PAD
GIF = b"GIF89a\x01\x00\x01\x00" + PAD
WEBP = b"RIFF" + (4 + len(PAD)).to_bytes(4, "little") + b"WEBPVP8 " + PAD
MP4 = (24).to_bytes(4, "big") + b"ftypisom" + b"\x00\x00\x02\x00" + b"isomiso2" + PAD
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87\x81\x04" + PAD
HEIC = (24).to_bytes(4, "big") + b"ftypheic" + b"\x00" * 12 + PAD  # ftyp, but an image
MKV = b"\x1a\x45\xdf\xa3\xa3\x42\x82\x88matroska" + PAD  # EBML, but not WebM
MAX = 10_000

NOT_BASE64 = "media_base64 is not valid base64"
NOT_IMAGE = r"media is not a supported image \(png, jpeg, gif, webp\)"
NOT_VIDEO = r"media is not a supported video \(mp4, webm\)"
BAD_TYPE = "media_type must be one of image, video"
DATA_PNG, DATA_GIF = "data:image/png;base64,", "data:image/gif;base64,"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "payload, media_type, content_type, extension",
    [
        pytest.param(b64(PNG), "image", "image/png", "png", id="png"),
        pytest.param(b64(JPEG), "image", "image/jpeg", "jpg", id="jpeg"),
        pytest.param(b64(GIF), "image", "image/gif", "gif", id="gif"),
        pytest.param(b64(WEBP), "image", "image/webp", "webp", id="webp"),
        pytest.param(b64(MP4), "video", "video/mp4", "mp4", id="mp4"),
        pytest.param(b64(WEBM), "video", "video/webm", "webm", id="webm"),
        pytest.param(base64.encodebytes(PNG).decode(), "image", "image/png", "png", id="newlines"),
        pytest.param(
            f" {b64(PNG)[:20]}\r\n\t{b64(PNG)[20:]}\n", "image", "image/png", "png", id="crlf-tabs"
        ),
        pytest.param(DATA_PNG + b64(PNG), "image", "image/png", "png", id="data-url"),
        # The declared data: MIME type is ignored; the bytes decide.
        pytest.param(DATA_GIF + b64(PNG), "image", "image/png", "png", id="data-lies"),
    ],
)
def test_valid_media_decodes(
    payload: str, media_type: str, content_type: str, extension: str
) -> None:
    media = decode_media(payload, media_type, MAX)
    assert (media.content_type, media.extension) == (content_type, extension)
    assert media.data == base64.b64decode("".join(payload.split(",")[-1].split()))


@pytest.mark.parametrize(
    "payload, media_type, message",
    [
        pytest.param(b64(PNG), "audio", BAD_TYPE, id="unsupported-type"),
        pytest.param(b64(PNG), "", BAD_TYPE, id="empty-type"),
        pytest.param("not base64!", "image", NOT_BASE64, id="bad-chars"),
        pytest.param(b64(PNG)[:-1], "image", NOT_BASE64, id="truncated"),
        pytest.param(b64(PNG).replace("A", "-"), "image", NOT_BASE64, id="urlsafe-alphabet"),
        pytest.param("iVBOR\u00e9w0K", "image", NOT_BASE64, id="non-ascii"),
        pytest.param("data:image/png," + b64(PNG), "image", "data: URL must be base64", id="raw"),
        pytest.param("", "image", NOT_IMAGE, id="empty"),
        pytest.param(b64(b"hello world, plain text"), "image", NOT_IMAGE, id="text"),
        pytest.param(b64(MP4), "image", NOT_IMAGE, id="video-as-image"),
        pytest.param(b64(PNG), "video", NOT_VIDEO, id="image-as-video"),
        pytest.param(b64(HEIC), "video", NOT_VIDEO, id="heic-is-not-mp4"),
        pytest.param(b64(HEIC), "image", NOT_IMAGE, id="heic-unsupported"),
        pytest.param(b64(MKV), "video", NOT_VIDEO, id="mkv-is-not-webm"),
    ],
)
def test_invalid_media_is_rejected(payload: str, media_type: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        decode_media(payload, media_type, MAX)
    assert not isinstance(info.value, TooLarge)


@pytest.mark.parametrize(
    "size, max_bytes, ok",
    [
        pytest.param(100, 100, True, id="exactly-max"),
        pytest.param(101, 100, False, id="one-over"),
        pytest.param(99, 100, True, id="padding-one-under"),
        pytest.param(98, 100, True, id="padding-two-under"),
    ],
)
def test_size_limit_is_exact(size: int, max_bytes: int, ok: bool) -> None:
    data = PNG[:size]
    if ok:
        assert decode_media(b64(data), "image", max_bytes).data == data
    else:
        with pytest.raises(TooLarge):
            decode_media(b64(data), "image", max_bytes)


def test_oversized_upload_is_refused_before_decoding() -> None:
    # Not even valid base64: TooLarge proves the length check ran before decoding.
    with pytest.raises(TooLarge, match="larger than 1000 bytes"):
        decode_media("!" * 4000, "image", 1000)

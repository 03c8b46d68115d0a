"""Notebook 01's helpers: the pure parts (URLs, traces, the PNG, the poll loop), no stack needed."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from labcore.widgets.write_path import (
    find_event,
    find_outbox_row,
    offset_time,
    sample_png,
    signed_url_parts,
    tampered,
    trail_rows,
    unique_name,
    wait_until,
)
from labcore.write.media import decode_media
from labcore.write.posts import USERNAME

LOCAL_URL = "http://127.0.0.1:8000/media/posts/abc.png?expires=1700003600&signature=deadbeef"
S3_URL = (
    "http://localhost:9000/media/posts/abc.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Date=20231114T221320Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=cafe0"
)


# --- polling ---------------------------------------------------------------------------------------


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = iter([None, [], ["done"]])
    assert wait_until(lambda: next(calls), timeout=1, interval=0) == ["done"]


def test_wait_until_times_out_naming_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="the event"):
        wait_until(lambda: False, timeout=0.05, interval=0.01, what="the event")


def test_unique_names_are_valid_usernames_and_differ() -> None:
    names = {unique_name("alice") for _ in range(50)}
    assert len(names) == 50
    assert all(USERNAME.fullmatch(name) and name.startswith("alice_") for name in names)


# --- media -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 16, 64])
def test_sample_png_is_a_png_the_api_accepts(size: int) -> None:
    import base64

    data = sample_png(size, seed=3)
    media = decode_media(base64.b64encode(data).decode(), "image", 5 * 1024 * 1024)
    assert media.content_type == "image/png"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (size, size)
    idat_len = struct.unpack(">I", data[33:37])[0]
    pixels = zlib.decompress(data[41 : 41 + idat_len])
    assert len(pixels) == size * (1 + 3 * size)  # a filter byte and RGB per pixel, per row


def test_sample_png_rejects_absurd_sizes() -> None:
    with pytest.raises(ValueError):
        sample_png(0)


def test_local_signed_url_parts() -> None:
    parts = signed_url_parts(LOCAL_URL, now=1_700_000_000)
    assert parts == {
        "host": "127.0.0.1:8000", "key": "posts/abc.png", "expires_at": 1_700_003_600.0,
        "valid_for_seconds": 3600, "signature": "deadbeef",
    }  # fmt: skip


def test_s3_signed_url_parts() -> None:
    signed_at = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC).timestamp()
    parts = signed_url_parts(S3_URL, now=signed_at)
    assert parts["key"] == "posts/abc.png"
    assert parts["expires_at"] == signed_at + 3600 and parts["valid_for_seconds"] == 3600
    assert parts["signature"] == "cafe0"


@pytest.mark.parametrize(("url", "param"), [(LOCAL_URL, "signature"), (S3_URL, "X-Amz-Signature")])
def test_tampered_changes_only_the_signature(url: str, param: str) -> None:
    original, forged = parse_qs(urlsplit(url).query), parse_qs(urlsplit(tampered(url)).query)
    assert forged[param] != original[param] and len(forged[param][0]) == len(original[param][0])
    assert {k: v for k, v in forged.items() if k != param} == {k: v for k, v in original.items() if k != param}
    assert urlsplit(tampered(url)).path == urlsplit(url).path


def test_tampered_refuses_an_unsigned_url() -> None:
    with pytest.raises(ValueError):
        tampered("http://example.com/media/x.png")


# --- finding one post's traces ------------------------------------------------------------------------


def _outbox(post_id: str, topic: str = "new-posts", published: str | None = None) -> dict:
    return {
        "id": 7, "topic": topic, "key": "a1", "payload": {"post_id": post_id},
        "created_at": "2024-01-01T00:00:00.002000+00:00", "published_at": published,
    }  # fmt: skip


def test_find_outbox_row_ignores_other_posts_and_topics() -> None:
    rows = [_outbox("p2"), _outbox("p1", topic="engagements"), _outbox("p1")]
    assert find_outbox_row(rows, "p1") is rows[2]
    assert find_outbox_row(rows, "p9") is None


def test_find_event() -> None:
    events = [{"value": {"post_id": "p1"}, "offset": "1-0"}, {"value": {"post_id": "p2"}, "offset": "2-0"}]
    assert find_event(events, "p2") is events[1]
    assert find_event(events, "p3") is None


@pytest.mark.parametrize(
    ("offset", "expected"), [("1704067200005-0", 1704067200.005), ("1704067200005-12", 1704067200.005), (42, None), ("42", None)]
)
def test_offset_time_reads_redis_stream_ids_only(offset: str | int, expected: float | None) -> None:
    assert offset_time(offset) == expected


def test_trail_rows_time_each_step_after_the_post() -> None:
    post = {"post_id": "p1", "created_at": "2024-01-01T00:00:00Z", "delivery": "push", "media_url": LOCAL_URL}
    outbox_row = _outbox("p1", published="2024-01-01T00:00:00.009000+00:00")
    event = {"partition": 2, "offset": "1704067200005-0", "value": {"post_id": "p1"}}
    rows = {row["step"]: row for row in trail_rows(post, outbox_row, event, delivered=3, followers=4)}
    assert list(rows) == sorted(rows), "steps come in write-path order"
    assert rows["0 media object"]["detail"] == "posts/abc.png"
    assert rows["2 outbox row"]["ms"] == pytest.approx(2.0)
    assert rows["3 event"]["ms"] == pytest.approx(5.0) and "partition 2" in rows["3 event"]["detail"]
    assert rows["4 marked published"]["ms"] == pytest.approx(9.0)
    assert rows["5 fan-out"]["detail"] == "3 of 4 follower mailboxes"


def test_trail_rows_before_the_relay_ran_and_for_a_pulled_post() -> None:
    post = {"post_id": "p1", "created_at": "2024-01-01T00:00:00Z", "delivery": "pull", "media_url": None}
    rows = {row["step"]: row for row in trail_rows(post, _outbox("p1"), None, delivered=0, followers=300)}
    assert "0 media object" not in rows
    assert rows["4 marked published"]["detail"] == "pending" and rows["4 marked published"]["ms"] is None
    assert rows["3 event"]["detail"] == "not on the log yet"
    assert "pulled at read time by 300" in rows["5 fan-out"]["detail"]

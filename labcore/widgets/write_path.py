"""Notebook 01 (the write path): follow one post from ``POST /posts`` to the follower mailboxes.

The pure functions (``signed_url_parts``, ``tampered``, ``find_outbox_row``, ``find_event``,
``trail_rows``, ``sample_png``) take plain data and are unit tested; the ones taking a ``LabClient``
gather that data from the running stack; ``composer`` wraps them in a small form for the learner.
``wait_until`` is the poll loop every notebook needs for asynchronous effects (the relay, fan-out).
"""

from __future__ import annotations

import secrets
import struct
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from labcore.domain import to_epoch

if TYPE_CHECKING:  # importing this module needs neither a stack nor the plotting libraries
    import ipywidgets
    import pandas as pd
    import plotly.graph_objects as go

    from labcore.lab.client import LabClient

T = TypeVar("T")


# --- polling ---------------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; ``TimeoutError`` after
    ``timeout`` seconds. Asynchronous effects (the relay publishing, fan-out writing mailboxes) land
    within milliseconds, so a short poll beats a fixed ``sleep`` that is either too long or flaky."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g} s")
        time.sleep(interval)


def unique_name(prefix: str) -> str:
    """``prefix`` plus a short random suffix: re-running a notebook never hits ``409 username taken``."""
    return f"{prefix}_{secrets.token_hex(3)}"


# --- media -----------------------------------------------------------------------------------------


def sample_png(size: int = 64, seed: int = 0) -> bytes:
    """A small, valid PNG (a colour gradient) built in memory, so a notebook needs no image file."""
    if not 1 <= size <= 1024:
        raise ValueError("size must be 1..1024 pixels")
    r0, g0, b0 = (seed * 97) % 256, (seed * 57 + 80) % 256, (seed * 31 + 160) % 256
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # filter type "none" for each scanline
        for x in range(size):
            rows += bytes(((r0 + 255 * x // size) % 256, (g0 + 255 * y // size) % 256, b0))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")


# Query parameters that carry the signature: S3 presigning (both profiles), and ``signature`` of the
# HMAC-signed ``/media/`` URLs the embedded profile served before it ran an S3 server.
_SIGNATURE_PARAMS = ("signature", "X-Amz-Signature")


def signed_url_parts(url: str, now: float | None = None) -> dict[str, Any]:
    """What a presigned media URL is made of: the object key, when it expires, its signature.

    Both profiles presign with S3 (SeaweedFS): ``/<bucket>/<key>?X-Amz-Date=...&X-Amz-Expires=<seconds>
    &X-Amz-Signature=...``. URLs with an ``expires=<epoch>`` parameter — ``labcore.testing``'s in-memory
    media, and the ``/media/<key>?expires=..&signature=<hmac>`` the embedded profile served before it
    ran an S3 server — are read too.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    path = parts.path.lstrip("/")
    if "expires" in query:
        key = path.removeprefix("media/")
        expires_at: float | None = float(query["expires"])
    elif "X-Amz-Expires" in query:
        key = path.split("/", 1)[1] if "/" in path else path
        signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ")  # UTC
        expires_at = to_epoch(signed_at) + float(query["X-Amz-Expires"])
    else:
        key, expires_at = path, None
    signature = next((query[p] for p in _SIGNATURE_PARAMS if p in query), None)
    now = time.time() if now is None else now
    return {
        "host": parts.netloc,
        "key": key,
        "expires_at": expires_at,
        "valid_for_seconds": None if expires_at is None else round(expires_at - now),
        "signature": signature,
    }


def tampered(url: str) -> str:
    """The same URL with one character of its signature changed: the server must refuse it (403)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    for i, (name, value) in enumerate(query):
        if name in _SIGNATURE_PARAMS and value:
            flipped = "0" if value[-1] != "0" else "1"
            query[i] = (name, value[:-1] + flipped)
            return urlunsplit(parts._replace(query=urlencode(query)))
    raise ValueError("not a signed URL: no signature parameter")


# --- finding one post's traces ------------------------------------------------------------------------


def find_outbox_row(rows: Sequence[Mapping[str, Any]], post_id: str) -> Mapping[str, Any] | None:
    """The outbox row announcing ``post_id`` (from ``lab.inspect("outbox")["rows"]``), if present."""
    return next((row for row in rows if row.get("payload", {}).get("post_id") == post_id and row.get("topic") == "new-posts"), None)


def find_event(events: Sequence[Mapping[str, Any]], post_id: str) -> Mapping[str, Any] | None:
    """The ``new-posts`` record for ``post_id`` (from ``lab.inspect("events/new-posts")``), if present."""
    return next((e for e in events if e.get("value", {}).get("post_id") == post_id), None)


def offset_time(offset: str | int) -> float | None:
    """Epoch seconds a Redis Streams entry id was appended at (``<ms>-<seq>``); Kafka offsets are plain
    counters and carry no time, so ``None``."""
    text = str(offset)
    if "-" not in text:
        return None
    millis, _, _ = text.partition("-")
    return int(millis) / 1000 if millis.isdigit() else None


def _epoch(value: str | float | datetime | None) -> float | None:
    """Epoch seconds at full precision (``to_epoch`` rounds to ms: too coarse for sub-ms steps)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def trail_rows(
    post: Mapping[str, Any],
    outbox_row: Mapping[str, Any] | None,
    event: Mapping[str, Any] | None,
    delivered: int,
    followers: int,
) -> list[dict[str, Any]]:
    """One row per place a post left a trace, with milliseconds after the post's creation time.

    ``post`` is the API's post (``post_id``, ``created_at``, ``media_url``, ``delivery``); the rest is
    what the stack holds: its outbox row, its event, and how many follower mailboxes hold it.
    """
    created = _epoch(post["created_at"])

    def after(value: str | float | None) -> float | None:
        at = _epoch(value)
        return None if at is None or created is None else round((at - created) * 1000, 2)

    rows = [{"step": "1 post row", "where": "SQL posts", "detail": f"delivery={post['delivery']}", "ms": 0.0}]
    if post.get("media_url"):
        rows.append({"step": "0 media object", "where": "object store", "detail": signed_url_parts(post["media_url"])["key"], "ms": None})
    if outbox_row is None:
        rows.append({"step": "2 outbox row", "where": "SQL outbox", "detail": "not found", "ms": None})
    else:
        rows.append({"step": "2 outbox row", "where": "SQL outbox", "detail": f"id={outbox_row['id']}", "ms": after(outbox_row["created_at"])})
        # The relay stamps published_at only after the log acknowledged the append, hence after step 3.
        published = outbox_row.get("published_at")
        rows.append({"step": "4 marked published", "where": "SQL outbox", "detail": "published" if published else "pending", "ms": after(published)})
    if event is None:
        rows.append({"step": "3 event", "where": "log new-posts", "detail": "not on the log yet", "ms": None})
    else:
        rows.append({
            "step": "3 event", "where": "log new-posts",
            "detail": f"partition {event['partition']}, offset {event['offset']}",
            "ms": after(offset_time(event["offset"])),
        })  # fmt: skip
    if post["delivery"] == "push":
        detail = f"{delivered} of {followers} follower mailboxes"
    else:
        detail = f"none: pulled at read time by {followers} followers"
    rows.append({"step": "5 fan-out", "where": "Redis feed:{follower}", "detail": detail, "ms": None})
    return sorted(rows, key=lambda row: row["step"])


# --- gathering it from the stack --------------------------------------------------------------------


def delivered_to(lab: LabClient, post_id: str, user_ids: Sequence[str]) -> list[str]:
    """The users among ``user_ids`` whose mailbox ``feed:{user}`` holds ``post_id`` (one round trip)."""
    pipe = lab.redis.pipeline(transaction=False)
    for user_id in user_ids:
        pipe.zscore(f"feed:{user_id}", post_id)
    return [user_id for user_id, score in zip(user_ids, pipe.execute()) if score is not None]


def write_trail(lab: LabClient, post: Mapping[str, Any], *, window: int = 200) -> pd.DataFrame:
    """Where one post (the response of ``lab.post``) is now: row, outbox, event, media, mailboxes."""
    import pandas as pd

    outbox_row = find_outbox_row(lab.inspect("outbox", limit=window)["rows"], post["post_id"])
    event = find_event(lab.inspect("events/new-posts", count=window), post["post_id"])
    followers = lab.store.follower_ids(post["user_id"])
    delivered = len(delivered_to(lab, post["post_id"], followers))
    return pd.DataFrame(trail_rows(post, outbox_row, event, delivered, len(followers))).set_index("step")


def trail_timeline(trail: pd.DataFrame) -> go.Figure:
    """Milliseconds after the post's creation at which each timed step happened."""
    import plotly.express as px

    timed = trail.dropna(subset=["ms"]).reset_index()
    fig = px.bar(
        timed, x="ms", y="step", orientation="h", text="ms", hover_data=["where", "detail"],
        title="One post through the write path (ms after its creation)",
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", title=None)
    fig.update_layout(height=260, xaxis_title="milliseconds after the post row's created_at")
    return fig


def post_and_trace(
    lab: LabClient, user_id: str, content: str, with_image: bool = False, timeout: float = 10.0
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Post through the API, wait for the event to reach the log, and return ``(post, trail)``."""
    post = lab.post(user_id, content, media=sample_png(seed=len(content)) if with_image else None)
    wait_until(
        lambda: find_event(lab.inspect("events/new-posts", count=50), post["post_id"]),
        timeout, what="the post's event on new-posts",
    )  # fmt: skip
    return post, write_trail(lab, post)


def composer(lab: LabClient, user_id: str) -> ipywidgets.VBox:
    """A small form: write a post as ``user_id`` and see where it went (calls ``post_and_trace``)."""
    import ipywidgets as widgets
    from IPython.display import display

    text = widgets.Textarea(value="Trying the write path from a widget.", layout=widgets.Layout(width="60%"))
    image = widgets.Checkbox(value=False, description="attach an image")
    button = widgets.Button(description="Post", button_style="primary")
    out = widgets.Output()

    def on_click(_: object) -> None:
        out.clear_output()
        with out:
            try:
                post, trail = post_and_trace(lab, user_id, text.value, image.value)
            except Exception as exc:  # noqa: BLE001 - show the API's refusal (422, 413...) in the form
                print(exc)
                return
            print("post_id", post["post_id"], "| delivery", post["delivery"])
            display(trail)
            display(trail_timeline(trail))

    button.on_click(on_click)
    return widgets.VBox([text, widgets.HBox([image, button]), out])


def probe(lab: LabClient, cases: Mapping[str, tuple[str, str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Send each ``name: (method, path, json body)`` to the API; the status and reason of each."""
    import pandas as pd

    rows = []
    for name, (method, path, body) in cases.items():
        response = lab.api.request(method, path, json=body)
        try:
            detail = response.json().get("detail", "")
        except ValueError:
            detail = response.text
        rows.append({"case": name, "status": response.status_code, "reason": str(detail)[:120]})
    return pd.DataFrame(rows).set_index("case")

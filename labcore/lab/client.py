"""``labcore.connect()``: a notebook's handle on the running stack.

Notebooks never own backends. They talk to the stack that ``feedlab up`` started — through its public
HTTP API, exactly as an app would, and through direct Redis and SQL clients for looking inside
(mailboxes, rows, streams).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from labcore.adapters.redis.mailboxes import RedisMailboxes
from labcore.adapters.sql.store import SqlStore
from labcore.bootstrap import redis_client
from labcore.errors import LabError
from labcore.settings import Settings


@dataclass(frozen=True)
class RuntimeInfo:
    api_url: str
    redis_url: str
    sql_url: str
    profile: str
    pid: int | None = None
    feature_server_url: str | None = None
    ranking_url: str | None = None
    data_dir: str | None = None
    s3_endpoint: str | None = None

    @classmethod
    def read(cls, path: Path) -> RuntimeInfo:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise LabError(f"no running stack ({path} missing): start it with `feedlab up`") from exc
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


class LabClient:
    """HTTP calls to the API plus read access to Redis and SQL."""

    def __init__(self, info: RuntimeInfo, settings: Settings) -> None:
        self.info = info
        self.settings = settings
        self.api = httpx.Client(base_url=info.api_url, timeout=30.0)
        self.redis: redis.Redis = redis_client(info.redis_url)
        self.store = SqlStore.from_url(info.sql_url)
        self.mailboxes = RedisMailboxes(self.redis, cap=settings.mailbox_cap)
        self.last_trace_id: str | None = None  # the trace of the last API call (``X-Trace-Id``)

    # --- the public API --------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.api.request(method, path, **kwargs)
        self.last_trace_id = response.headers.get("X-Trace-Id", self.last_trace_id)
        if response.status_code >= 400:
            raise LabError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def create_user(self, username: str, display_name: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/users/", json={"username": username, "display_name": display_name or username})

    def follow(self, follower_id: str, followee_id: str) -> dict[str, Any]:
        return self._call("POST", "/users/follow", json={"follower_id": follower_id, "followee_id": followee_id})

    def post(self, user_id: str, content: str, media: bytes | None = None, media_type: str = "image") -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": user_id, "content": content}
        if media is not None:
            body |= {"media_base64": base64.b64encode(media).decode(), "media_type": media_type}
        return self._call("POST", "/posts/", json=body)

    def like(self, user_id: str, post_id: str) -> dict[str, Any]:
        return self._call("POST", f"/posts/{post_id}/like", json={"user_id": user_id, "post_id": post_id})

    def feed(self, user_id: str, limit: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"user_id": user_id} | ({"limit": limit} if limit else {})
        return self._call("GET", "/feed/", params=params)

    def explain(self, user_id: str, limit: int | None = None) -> dict[str, Any]:
        """The feed plus every candidate's journey through the four stages."""
        params: dict[str, Any] = {"user_id": user_id} | ({"limit": limit} if limit else {})
        return self._call("GET", "/feed/explain", params=params)

    def impressions(self, user_id: str, post_ids: list[str]) -> dict[str, Any]:
        """Report that the client showed ``post_ids`` to the user (they leave the feed for 24 h)."""
        return self._call("POST", "/impressions", json={"user_id": user_id, "post_ids": post_ids})

    # --- inside the stack (the API's read-only introspection routes) ------------------------------
    def inspect(self, what: str, **params: Any) -> Any:
        """``GET /introspect/<what>``: e.g. ``inspect("mailbox/<user_id>")``, ``inspect("outbox")``,
        ``inspect("events/new-posts", count=5)``, ``inspect("vectors", limit=500)``,
        ``inspect("interest/<user_id>")``, ``inspect("impressions")``."""
        return self._call("GET", f"/introspect/{what}", params=params)

    # --- traces and metrics ----------------------------------------------------------------------
    def traces(self, limit: int = 20, root: str | None = None) -> list[dict[str, Any]]:
        """Summaries of the newest traces (``root="GET /feed/"`` for feed requests only)."""
        return self._call("GET", "/traces/", params={"limit": limit} | ({"root": root} if root else {}))

    def trace(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        """Every span of one trace (default: the last API call's), in start order."""
        trace_id = trace_id or self.last_trace_id
        if trace_id is None:
            raise LabError("no trace id: make an API call first or pass one")
        return self._call("GET", f"/traces/{trace_id}")

    def metrics(self) -> str:
        """The API process's ``/metrics`` in Prometheus text format (parse with ``labcore.widgets.observability.parse_metrics``)."""
        response = self.api.get("/metrics")
        response.raise_for_status()
        return response.text

    # --- running services from notebook cells -----------------------------------------------------
    def services(self) -> dict[str, str]:
        return self._call("GET", "/admin/services")

    def stop(self, service: str) -> dict[str, str]:
        """Stop one service of the running stack (``redis``, ``ranking``, ``feature-server``,
        ``vectors``, ``impressions``, or a worker such as ``fanout-worker``)."""
        return self._call("POST", f"/admin/services/{service}/stop")

    def start(self, service: str) -> dict[str, str]:
        return self._call("POST", f"/admin/services/{service}/start")

    def serving(self) -> dict[str, Any]:
        """The ranking model, the A/B treatment and its share, the exploration share in force."""
        return self._call("GET", "/admin/serving")

    def configure_serving(self, **changes: Any) -> dict[str, Any]:
        """Change serving knobs of the embedded runtime without a restart, e.g.
        ``lab.configure_serving(ranking_treatment="learned-v1", ranking_treatment_share=0.5)``;
        ``ranking_treatment=""`` ends an A/B test. An unknown model version raises, and the running
        model keeps serving."""
        return self._call("PUT", "/admin/serving", json=changes)

    def wait_until_ready(
        self,
        groups: Sequence[str] | None = None,
        *,
        progress: bool = True,
        stall_seconds: float = 120.0,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        """Wait, with a progress bar, until the outbox is empty and ``groups`` (default: every consumer
        group ``/health`` reports) have handled every event; returns the last ``/health``.

        Right after a seed the embedding worker owes minutes of work: discovery and topic similarity
        need every post's vector. The bar counts events handled since the call; its postfix shows
        each group's backlog. Gives up only when nothing moved for ``stall_seconds`` (a fresh world
        on a busy laptop takes minutes; a stopped worker never finishes), with ``TimeoutError``.
        """
        from tqdm.auto import tqdm

        peak, best, moved_at = 0, None, time.monotonic()
        with tqdm(desc="catching up", unit="event", disable=not progress, leave=False) as bar:
            while True:
                health = self.health()
                owed = _owed(health, groups)
                if owed == 0:
                    bar.update(peak - bar.n)
                    return health
                if owed is not None:
                    peak = max(peak, owed + bar.n)
                    bar.total = peak
                    bar.update(max(0, peak - owed - bar.n))
                    bar.set_postfix_str(_backlog_summary(health, groups), refresh=False)
                    if best is None or owed < best:
                        best, moved_at = owed, time.monotonic()
                if time.monotonic() - moved_at > stall_seconds:
                    raise TimeoutError(
                        f"still {owed} events to handle and no progress for {stall_seconds:.0f} s "
                        f"({_backlog_summary(health, groups)}); is a worker stopped? {health.get('workers')}"
                    )
                time.sleep(interval)

    # --- the world ---------------------------------------------------------------------------------
    def seed(self, size: str = "small", seed: int | None = None, progress: bool = True) -> dict[str, int]:
        """Load the deterministic synthetic world through the real write path (once per stack)."""
        from labcore.bootstrap import build_stack
        from labcore.lab.world import generate_world, load_world
        from labcore.write.posts import WritePath

        world = generate_world(size, self.settings.seed if seed is None else seed)
        if self.store.get_users([world.users[0].user_id]):
            return {"already_seeded": 1}
        stack = build_stack(self.stack_settings())
        try:
            return load_world(world, WritePath(stack), progress=progress)
        finally:
            stack.close()

    def stack_settings(self) -> Settings:
        """This client's settings pointed at the running stack's servers (what ``runtime.json`` says)."""
        update = {"redis_url": self.info.redis_url, "sql_url": self.info.sql_url}
        if self.info.s3_endpoint:
            update["s3_endpoint"] = self.info.s3_endpoint
        return self.settings.model_copy(update=update)

    # --- looking inside --------------------------------------------------------------------------
    def mailbox(self, user_id: str) -> list[tuple[str, float]]:
        """The raw ZSET ``feed:{user_id}``: (post_id, score) newest first."""
        return self.mailboxes.entries(user_id)

    def close(self) -> None:
        self.api.close()
        self.redis.close()
        self.store.dispose()

    def __enter__(self) -> LabClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _owed(health: Mapping[str, Any], groups: Sequence[str] | None) -> int | None:
    """Events still to publish (outbox) plus to handle (the chosen groups); None when not known."""
    backlogs = health.get("backlog") or {}
    chosen = list(backlogs) if groups is None else list(groups)
    figures = [health.get("outbox_backlog")] + [backlogs.get(g, {}).get("backlog") for g in chosen]
    return None if any(f is None for f in figures) else sum(figures)


def _backlog_summary(health: Mapping[str, Any], groups: Sequence[str] | None) -> str:
    backlogs = health.get("backlog") or {}
    parts = [f"outbox {health.get('outbox_backlog')}"]
    for group, figures in backlogs.items():
        if groups is None or group in groups:
            eta = figures.get("eta_seconds")
            parts.append(f"{group} {figures.get('backlog')}" + (f" (~{eta:.0f}s)" if eta else ""))
    return ", ".join(parts)


def find_runtime_file(settings: Settings) -> Path:
    """``<data_dir>/runtime.json``; a relative data_dir is also looked for in parent folders.

    JupyterLab starts kernels in the notebook's folder (``notebooks/``) while ``make lab`` starts the
    stack from the repository root, so a notebook has to look one level up.
    """
    path = settings.runtime_file
    if path.is_absolute() or path.exists():
        return path
    for parent in Path.cwd().resolve().parents:
        candidate = parent / path
        if candidate.exists():
            return candidate
    return path


def connect(settings: Settings | None = None) -> LabClient:
    """A client for the stack described by ``<data_dir>/runtime.json`` (written by ``feedlab up``)."""
    settings = settings or Settings()
    return LabClient(RuntimeInfo.read(find_runtime_file(settings)), settings)

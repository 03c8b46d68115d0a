"""The public API (port 8000): a thin FastAPI layer over labcore.

Routes parse, call labcore and map the lab's errors to HTTP statuses here, in one place — never a
500 for bad input. OpenAPI docs at ``/docs`` (Swagger UI served from this process: works offline).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline

from labcore.bootstrap import Stack
from labcore.errors import (
    BackendUnavailable,
    Conflict,
    Forbidden,
    InvalidInput,
    LabError,
    NotFound,
    TooLarge,
)
from labcore.feed.pipeline import FeedPipeline
from labcore.write.posts import WritePath
from services.api.routes import (
    admin,
    feed,
    health,
    impressions,
    introspect,
    posts,
    traces,
    users,
)
from services.api.routes.admin import ServiceControl
from services.api.schemas import ErrorPublic
from services.http_telemetry import FASTAPI_TELEMETRY, instrument

# Most specific first: TooLarge is an InvalidInput.
STATUS_FOR: list[tuple[type[LabError], int]] = [
    (TooLarge, 413),
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
    (BackendUnavailable, 503),
    (LabError, 400),
]


class BodyLimit:
    """413 for a body over ``max_body`` bytes: by its Content-Length, or — for a chunked body, which
    declares none — as soon as the bytes received pass the limit, so nothing reads it all first."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            response = JSONResponse({"detail": f"request body larger than {self.max_body} bytes"}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:  # FastAPI turns this into the response as it reads the body
                raise HTTPException(413, f"request body larger than {self.max_body} bytes")
            return message

        await self.app(scope, counted, send)


def _status(exc: LabError) -> int:
    return next(code for kind, code in STATUS_FOR if isinstance(exc, kind))


def create_app(
    stack: Stack,
    writes: WritePath | None = None,
    workers: dict[str, Callable[[], dict[str, Any]]] | None = None,
    pipeline: FeedPipeline | None = None,
    control: ServiceControl | None = None,
) -> FastAPI:
    # FastAPI's "self-hosting JavaScript and CSS for docs": /docs and /redoc load Swagger UI and ReDoc
    # from the installed fastapi-offline package (under /static-offline-docs), never from a CDN, so
    # the docs render on an offline laptop.
    app = FastAPIOffline(
        title="Social Feed Lab API",
        version="0.1.0",
        description="Write path, fan-out and the feed of the Social Feed Lab.",
        telemetry=FASTAPI_TELEMETRY,
        # 422 comes from FastAPI's request validation (a list per field) *and* from labcore's
        # InvalidInput (one sentence); the spec has to allow both or clients' validators reject ours.
        responses={422: {"model": ErrorPublic, "description": "Invalid input"}},
    )
    app.state.stack = stack
    app.state.writes = writes or WritePath(stack)
    app.state.workers = workers or {}
    app.state.pipeline = pipeline or FeedPipeline(stack)
    # Admission control: feed requests beyond the slots wait here instead of sharing the GIL.
    app.state.feed_slots = anyio.CapacityLimiter(stack.settings.resolved_feed_concurrency())
    # Base64 inflates by 4/3; allow that plus room for the JSON around it.
    max_body = stack.settings.media_max_bytes * 4 // 3 + stack.settings.content_max_chars * 4 + 64 * 1024

    app.add_middleware(BodyLimit, max_body=max_body)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own handler echoes each bad ``input``; one holding a lone surrogate (valid JSON,
        # invalid Unicode) cannot be encoded as UTF-8 and became a 500. ASCII-escaped JSON can.
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(LabError)
    async def lab_error(_request: Request, exc: LabError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc))

    @app.exception_handler(NotImplementedError)
    async def not_implemented(_request: Request, exc: NotImplementedError) -> JSONResponse:
        # An exercise starter plugged in through an extension point (labcore.extensions) and not
        # written yet: say what to implement instead of a bare 500.
        return JSONResponse({"detail": f"not implemented: {exc}"}, status_code=501)

    if control is not None:
        app.state.control = control
        app.include_router(admin.router)
    routers = (users, posts, feed, impressions, introspect, health, traces)
    for module in routers:
        app.include_router(module.router)
    instrument(app)
    return app

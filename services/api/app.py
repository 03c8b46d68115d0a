"""The public API (port 8000): a thin FastAPI layer over labcore.

Routes parse, call labcore and map the lab's errors to HTTP statuses here, in one place — never a
500 for bad input. OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from labcore.bootstrap import Stack
from labcore.errors import BackendUnavailable, Conflict, Forbidden, InvalidInput, LabError, NotFound, TooLarge
from labcore.feed import FeedPipeline
from labcore.write_path import WritePath
from services.api.routes.admin import ServiceControl
from services.api.routes import admin, feed, health, impressions, introspect, media, posts, traces, users
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


def _status(exc: LabError) -> int:
    return next(code for kind, code in STATUS_FOR if isinstance(exc, kind))


def create_app(
    stack: Stack,
    writes: WritePath | None = None,
    workers: dict[str, Callable[[], dict[str, Any]]] | None = None,
    pipeline: FeedPipeline | None = None,
    control: ServiceControl | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Social Feed Lab API",
        version="0.1.0",
        description="Write path, fan-out and the feed of the Social Feed Lab.",
        telemetry=FASTAPI_TELEMETRY,
    )
    app.state.stack = stack
    app.state.writes = writes or WritePath(stack)
    app.state.workers = workers or {}
    app.state.pipeline = pipeline or FeedPipeline(stack)
    # Base64 inflates by 4/3; allow that plus room for the JSON around it.
    max_body = stack.settings.media_max_bytes * 4 // 3 + stack.settings.content_max_chars * 4 + 64 * 1024

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # noqa: ANN001, ANN202
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            return JSONResponse({"detail": f"request body larger than {max_body} bytes"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(LabError)
    async def lab_error(_request: Request, exc: LabError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc))

    if control is not None:
        app.state.control = control
        app.include_router(admin.router)
    routers = (users, posts, feed, impressions, introspect, media, health, traces)
    for module in routers:
        app.include_router(module.router)
    instrument(app)
    return app

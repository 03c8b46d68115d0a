"""Stop and start services of the embedded runtime from a notebook cell (fault-injection lessons).

Mounted only when the API runs inside the embedded runtime, which binds to 127.0.0.1.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, Request

router = APIRouter(prefix="/admin", tags=["admin"])


class ServiceControl(Protocol):
    def services(self) -> dict[str, str]: ...
    def stop_service(self, name: str) -> None: ...
    def start_service(self, name: str) -> None: ...


def _control(request: Request) -> ServiceControl:
    return request.app.state.control


@router.get("/services")
def services(request: Request) -> dict[str, str]:
    """Every stoppable service: running or stopped."""
    return _control(request).services()


@router.post("/services/{name}/stop")
def stop(name: str, request: Request) -> dict[str, str]:
    _control(request).stop_service(name)
    return {"service": name, "state": _control(request).services()[name]}


@router.post("/services/{name}/start")
def start(name: str, request: Request) -> dict[str, str]:
    _control(request).start_service(name)
    return {"service": name, "state": _control(request).services()[name]}

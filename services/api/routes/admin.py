"""Stop and start services of the embedded runtime from a notebook cell (fault-injection lessons),
and turn its serving knobs — ranking model, A/B treatment, exploration share — without a restart
(the learned-ranking lesson).

Mounted only when the API runs inside the embedded runtime, which binds to 127.0.0.1.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(prefix="/admin", tags=["admin"])


class ServiceControl(Protocol):
    def services(self) -> dict[str, str]: ...
    def stop_service(self, name: str) -> None: ...
    def start_service(self, name: str) -> None: ...
    def serving(self) -> dict[str, Any]: ...
    def configure_serving(self, changes: dict[str, Any]) -> dict[str, Any]: ...


class ServingUpdate(BaseModel):
    """Serving knobs to change; the ones left out keep their value."""

    model_config = ConfigDict(extra="forbid")
    ranking_model: str | None = Field(default=None, max_length=64)
    ranking_treatment: str | None = Field(default=None, max_length=64, description='"" ends the A/B test')
    ranking_treatment_share: float | None = Field(default=None, ge=0, le=1)
    exploration_share: float | None = Field(default=None, ge=0, le=0.5)


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


@router.get("/serving")
def serving(request: Request) -> dict[str, Any]:
    """The ranking model, the A/B treatment and share, the exploration share."""
    return _control(request).serving()


@router.put("/serving")
def configure_serving(body: ServingUpdate, request: Request) -> dict[str, Any]:
    """Swap the ranking model, start or end an A/B test, set the exploration share — no restart.
    An unknown model version is a 422 and the running model keeps serving."""
    changes = body.model_dump(exclude_unset=True)
    if changes.get("ranking_treatment") == "":
        changes["ranking_treatment"] = None
    return _control(request).configure_serving(changes)

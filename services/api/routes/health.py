from __future__ import annotations

from fastapi import APIRouter, Request

from labcore.errors import LabError
from services.api.deps import StackDep
from services.api.schemas import Health

router = APIRouter(tags=["health"])


def _check(probe) -> str:  # noqa: ANN001 - any zero-argument callable
    try:
        probe()
        return "ok"
    except LabError as exc:
        return f"down: {exc}"


@router.get("/health", response_model=Health)
def health(stack: StackDep, request: Request) -> Health:
    """Each component's state; ``degraded`` (still 200) when any is down, so the feed keeps serving."""
    components = {
        "sql": _check(stack.store.health),
        "redis": _check(stack.mailboxes.ping),
        "event_log": _check(stack.events.health),
        "media": _check(stack.media.health),
        "vectors": _check(lambda: stack.vectors.health()),
        "olap": _check(lambda: stack.impressions.health()),
        "features": _check(lambda: stack.features.health()),
        "ranking": _check(lambda: stack.ranker.health()),
    }
    try:
        backlog = stack.store.outbox_backlog()
    except LabError:
        backlog = None
    workers = {name: report() for name, report in getattr(request.app.state, "workers", {}).items()}
    status = "ok" if all(v == "ok" for v in components.values()) else "degraded"
    return Health(
        status=status, profile=stack.settings.profile, components=components, workers=workers, outbox_backlog=backlog
    )

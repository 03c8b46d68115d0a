from __future__ import annotations

from fastapi import APIRouter, Request

from labcore.errors import LabError
from labcore.workers.backlog import BacklogTracker, consumer_groups, is_ready
from services.api.deps import StackDep
from services.api.schemas import GroupBacklogPublic, Health

router = APIRouter(tags=["health"])


def _check(probe) -> str:  # noqa: ANN001 - any zero-argument callable
    try:
        probe()
        return "ok"
    except LabError as exc:
        return f"down: {exc}"


@router.get("/health", response_model=Health)
def health(stack: StackDep, request: Request) -> Health:
    """Each component's state, the outbox and every consumer group's backlog (with an ETA).

    Always 200, so the feed keeps serving: ``degraded`` when a component is down, else ``catching_up``
    while events wait to be published or handled, else ``ok``."""
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
    tracker = getattr(request.app.state, "backlog", None)
    if tracker is None:  # one per app: the ETA needs the samples of earlier calls
        tracker = request.app.state.backlog = BacklogTracker(stack.events, consumer_groups(stack.settings))
    groups = tracker.report()
    ready = is_ready(groups, backlog)
    if not all(v == "ok" for v in components.values()):
        status = "degraded"
    else:
        status = "ok" if ready else "catching_up"
    settings = stack.settings
    engines = {
        "vectors": f"qdrant server at {settings.resolved_vector_url()}"
        if settings.resolved_vector_url()
        else "qdrant-edge (Qdrant's engine in this process)",
        "media": f"S3 server (SeaweedFS) at {settings.s3_endpoint}",
    }
    return Health(
        status=status,
        engines=engines,
        ready=ready,
        profile=stack.settings.profile,
        components=components,
        workers=workers,
        outbox_backlog=backlog,
        backlog={
            name: GroupBacklogPublic(
                topic=g.topic, backlog=g.backlog, rate_per_second=g.rate_per_second, eta_seconds=g.eta_seconds
            )
            for name, g in groups.items()
        },
    )

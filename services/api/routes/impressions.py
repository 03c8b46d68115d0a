from __future__ import annotations

from fastapi import APIRouter, status

from labcore.write.impressions import record_impressions
from services.api.deps import StackDep
from services.api.schemas import ImpressionsCreate, ImpressionsRecorded

router = APIRouter(tags=["impressions"])


@router.post("/impressions", status_code=status.HTTP_202_ACCEPTED, response_model=ImpressionsRecorded)
def impressions(body: ImpressionsCreate, stack: StackDep) -> ImpressionsRecorded:
    """Report what the client actually *showed* the user; those posts leave the feed for 24 h.

    Serving a post is not seeing it: only reported impressions filter. 202 because the OLAP store
    loads them asynchronously (the feed's Redis set filters them at once); 503 if the event log is
    down — retrying is harmless.
    """
    stack.store.get_user(body.user_id)  # NotFound for an unknown user
    recorded = record_impressions(stack.events, stack.recent_impressions, body.user_id, body.post_ids)
    return ImpressionsRecorded(user_id=body.user_id, recorded=recorded)

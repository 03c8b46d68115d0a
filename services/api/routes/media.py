from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from labcore.errors import NotFound
from services.api.deps import StackDep

router = APIRouter(tags=["media"])


@router.get("/media/{key:path}", response_class=Response)
def media(
    key: str,
    stack: StackDep,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(max_length=128)],
) -> Response:
    """Serve local media behind an HMAC-signed, expiring URL (embedded profile; MinIO signs its own)."""
    open_signed = getattr(stack.media, "open_signed", None)
    if open_signed is None:
        raise NotFound("media is served by the object store in this profile")
    data, content_type = open_signed(key, expires, signature)
    return Response(content=data, media_type=content_type, headers={"Cache-Control": "private, max-age=60"})

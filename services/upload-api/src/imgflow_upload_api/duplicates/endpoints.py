"""GET /v1/images/{id}/duplicates: the images the deduper judged duplicates of this one.

An image's group is every image reachable through pairs (duplicates of duplicates), since
near-duplicate judgements are not transitive on their own but a user reviews them as one.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import parse_id, resources
from imgflow_upload_api.duplicates import repository
from imgflow_upload_api.duplicates.schemas import DuplicatesView, DuplicateView
from imgflow_upload_api.problems import PROBLEM_RESPONSE, image_not_found

router = APIRouter()


@router.get(
    "/v1/images/{image_id}/duplicates",
    response_model=DuplicatesView,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="Images the deduper judged duplicates of this one, and its duplicate group",
)
async def get_duplicates(image_id: str, request: Request, caller: CurrentCaller) -> DuplicatesView:
    parsed = parse_id(image_id, image_not_found)
    async with resources(request).pool.acquire() as conn:
        exists, checked = await repository.checked_at(conn, caller.tenant_id, parsed)
        if not exists:
            raise image_not_found(repr(image_id))
        duplicates = await repository.fetch_duplicates(conn, parsed)
        group = await repository.fetch_group(conn, parsed) if duplicates else [parsed]
    return DuplicatesView(
        id=parsed,
        checked_at=checked,
        duplicates=[DuplicateView(**d) for d in duplicates],
        group=group[: repository.MAX_GROUP],
        group_truncated=len(group) > repository.MAX_GROUP,
    )

"""GET /v1/similar-stacks and /v1/similar-stacks/{id}: the stacks the deduper keeps (images
of one scene or moment: burst frames, overlapping crops, another viewpoint); POST
/v1/similar-stacks/{id}/resolve: keep a pick, trash only what is named, or dismiss.

The listing pages by keyset on (updated_at, id), newest change first, as the duplicate
groups' does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import parse_id, resources
from imgflow_upload_api.paging import DEFAULT_LIMIT, CursorParam, Limit, Listing, after, page
from imgflow_upload_api.problems import PROBLEM_RESPONSE
from imgflow_upload_api.stacks import repository
from imgflow_upload_api.stacks.resolution import resolve
from imgflow_upload_api.stacks.schemas import (
    SimilarStackPage,
    SimilarStackSummary,
    SimilarStackView,
    StackResolveAnswer,
    StackResolveRequest,
)
from imgflow_upload_api.stacks.service import (
    resolution_of,
    stack_not_found,
    stack_view,
    summary_pick,
)

router = APIRouter()


@router.get(
    "/v1/similar-stacks",
    response_model=SimilarStackPage,
    responses={400: PROBLEM_RESPONSE, 401: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE},
    summary="The caller's similar stacks, latest change first, a page at a time",
    description=(
        "`cursor` is opaque: pass back the `next_cursor` of a page of this tenant's "
        "listing. Any other cursor is refused: 400 `bad-cursor`. `resolved`: only the "
        "stacks resolved at their current version (`true`) or those still to review "
        "(`false`); a change of members reopens a stack."
    ),
)
async def list_stacks(
    request: Request,
    response: Response,
    caller: CurrentCaller,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
    resolved: Annotated[
        bool | None,
        Query(description="Only resolved stacks (`true`) or only those to review (`false`)."),
    ] = None,
) -> SimilarStackPage:
    start = after(cursor, caller.tenant_id, Listing.SIMILAR_STACKS)
    async with resources(request).pool.acquire() as conn:
        rows = await repository.stack_page(
            conn,
            caller.tenant_id,
            (start.at, start.id) if start else None,
            limit + 1,
            resolved=resolved,
        )
    shown, next_cursor = page(
        rows,
        limit,
        keyset=("updated_at", "id"),
        listing=Listing.SIMILAR_STACKS,
        tenant_id=caller.tenant_id,
        request=request,
        response=response,
    )
    return SimilarStackPage(
        items=[
            SimilarStackSummary(
                id=r["id"],
                url=f"/v1/similar-stacks/{r['id']}",
                version=r["version"],
                size=r["size"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                suggested_pick=summary_pick(r["frames"]),
                resolution=resolution_of(r),
            )
            for r in shown
        ],
        next_cursor=next_cursor,
    )


@router.get(
    "/v1/similar-stacks/{stack_id}",
    response_model=SimilarStackView,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="A similar stack: members, their duplicate groups, the evidence, a pick",
)
async def get_stack(stack_id: str, request: Request, caller: CurrentCaller) -> SimilarStackView:
    parsed = parse_id(stack_id, stack_not_found)
    async with resources(request).pool.acquire() as conn:
        detail = await repository.fetch_stack_detail(conn, caller.tenant_id, parsed)
    if detail is None:
        raise stack_not_found(parsed)
    return stack_view(detail)


@router.post(
    "/v1/similar-stacks/{stack_id}/resolve",
    response_model=StackResolveAnswer,
    responses={
        401: PROBLEM_RESPONSE,
        404: PROBLEM_RESPONSE,
        409: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
    },
    summary="Keep a pick (trashing only the members named), or dismiss the stack",
    description=(
        "Nothing is trashed unless `trash` names it. 409 `stack-changed` when `version` "
        "is no longer the stack's, 422 `not-a-member` when a named image is not in the "
        "stack, 422 `bad-resolution` for a dismiss with keep or trash, or an image both "
        "kept and trashed."
    ),
)
async def resolve_stack(
    stack_id: str,
    request: Request,
    caller: CurrentCaller,
    body: Annotated[StackResolveRequest, Body()],
) -> StackResolveAnswer:
    parsed = parse_id(stack_id, stack_not_found)
    return await resolve(resources(request).pool, caller.tenant_id, parsed, body)

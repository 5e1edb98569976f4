"""GET /v1/images/{id}/duplicates: the images the deduper judged duplicates of this one;
GET /v1/duplicate-groups and /v1/duplicate-groups/{id}: the groups it keeps.

A group is what the deduper's average-linkage rule makes of the pairs (never a chain of
pairs through one weak match); the API only reads the groups stored.
The listing pages by keyset on (updated_at, id), newest change first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import parse_id, resources
from imgflow_upload_api.duplicates import repository
from imgflow_upload_api.duplicates.resolution import resolve
from imgflow_upload_api.duplicates.schemas import (
    DuplicateGroupPage,
    DuplicateGroupSummary,
    DuplicateGroupView,
    DuplicatesView,
    DuplicateView,
    ResolveAnswer,
    ResolveRequest,
)
from imgflow_upload_api.duplicates.service import group_not_found, group_view, summary_keeper
from imgflow_upload_api.paging import DEFAULT_LIMIT, CursorParam, Limit, Listing, after, page
from imgflow_upload_api.problems import PROBLEM_RESPONSE, image_not_found
from imgflow_upload_api.stacks import repository as stacks_repository

router = APIRouter()


@router.get(
    "/v1/images/{image_id}/duplicates",
    response_model=DuplicatesView,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary=(
        "Images the deduper judged duplicates of this one, its duplicate group and its "
        "similar stack"
    ),
)
async def get_duplicates(image_id: str, request: Request, caller: CurrentCaller) -> DuplicatesView:
    parsed = parse_id(image_id, image_not_found)
    async with resources(request).pool.acquire() as conn:
        exists, checked = await repository.checked_at(conn, caller.tenant_id, parsed)
        if not exists:
            raise image_not_found(repr(image_id))
        duplicates = await repository.fetch_duplicates(conn, parsed)
        group_id, group = await repository.stored_group(conn, parsed)
        similar_stack = await stacks_repository.stack_of(conn, parsed)
    group = group or [parsed]
    return DuplicatesView(
        id=parsed,
        checked_at=checked,
        duplicates=[DuplicateView(**d) for d in duplicates],
        group=group[: repository.MAX_GROUP],
        group_truncated=len(group) > repository.MAX_GROUP,
        group_id=group_id,
        similar_stack=similar_stack,
    )


@router.get(
    "/v1/duplicate-groups",
    response_model=DuplicateGroupPage,
    responses={400: PROBLEM_RESPONSE, 401: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE},
    summary="The caller's duplicate groups, latest change first, a page at a time",
    description=(
        "`cursor` is opaque: pass back the `next_cursor` of a page of this tenant's "
        "listing. Any other cursor, though it matches the schema, is refused: 400 "
        "`bad-cursor` (a cursor is bound to its tenant and listing by a check digest)."
    ),
)
async def list_groups(
    request: Request,
    response: Response,
    caller: CurrentCaller,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
) -> DuplicateGroupPage:
    start = after(cursor, caller.tenant_id, Listing.DUPLICATE_GROUPS)
    async with resources(request).pool.acquire() as conn:
        rows = await repository.group_page(
            conn,
            caller.tenant_id,
            (start.at, start.id) if start else None,
            limit + 1,  # one more than asked says whether a next page exists
        )
    shown, next_cursor = page(
        rows,
        limit,
        keyset=("updated_at", "id"),
        listing=Listing.DUPLICATE_GROUPS,
        tenant_id=caller.tenant_id,
        request=request,
        response=response,
    )
    return DuplicateGroupPage(
        items=[
            DuplicateGroupSummary(
                **{k: v for k, v in r.items() if k != "candidates"},
                url=f"/v1/duplicate-groups/{r['id']}",
                suggested_keeper=summary_keeper(r["candidates"]),
            )
            for r in shown
        ],
        next_cursor=next_cursor,
    )


@router.get(
    "/v1/duplicate-groups/{group_id}",
    response_model=DuplicateGroupView,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="A duplicate group: members, the evidence between them, a suggested keeper",
)
async def get_group(group_id: str, request: Request, caller: CurrentCaller) -> DuplicateGroupView:
    parsed = parse_id(group_id, group_not_found)
    async with resources(request).pool.acquire() as conn:
        detail = await repository.fetch_group_detail(conn, caller.tenant_id, parsed)
    if detail is None:
        raise group_not_found(parsed)
    return group_view(detail)


@router.post(
    "/v1/duplicate-groups/{group_id}/resolve",
    response_model=ResolveAnswer,
    responses={
        401: PROBLEM_RESPONSE,
        404: PROBLEM_RESPONSE,
        409: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
    },
    summary="Trash copies in a group, or dismiss it; the version it was decided on, or 409",
    description=(
        "Decided by the group's state, not the request's shape: 409 `group-changed` when "
        "`version` is no longer the group's, 422 `not-a-member` when a named image is not "
        "in the group, 422 `bad-resolution` for a dismiss with keep or trash, or an image "
        "both kept and trashed."
    ),
)
async def resolve_group(
    group_id: str, request: Request, caller: CurrentCaller, body: Annotated[ResolveRequest, Body()]
) -> ResolveAnswer:
    parsed = parse_id(group_id, group_not_found)
    return await resolve(resources(request).pool, caller.tenant_id, parsed, body)

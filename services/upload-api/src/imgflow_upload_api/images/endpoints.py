"""The image routes: read one, list, delete, run stages again, and download the bytes.

The listing pages by keyset on (created_at, id), the order of the index
images_tenant_created: a page costs the same however deep it is, and an image uploaded
while a client pages is newer than every cursor, so it never shifts or repeats the pages
that follow.

Downloads: an original's ETag is its SHA-256 (its key is content-addressed, so it never
changes); a rendition's is S3's ETag of the object, which changes whenever it is rewritten.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse

from imgflow_contracts.queues import Stage
from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import parse_id, resources
from imgflow_upload_api.images import repository
from imgflow_upload_api.images.schemas import (
    ImagePage,
    ImageSummary,
    ImageView,
    ReprocessAccepted,
    ReprocessRequest,
    Rfc3339,
    image_view,
)
from imgflow_upload_api.images.service import delete_image
from imgflow_upload_api.images.streaming import Download, serve
from imgflow_upload_api.images.trash import restore
from imgflow_upload_api.paging import DEFAULT_LIMIT, CursorParam, Limit, Listing, after, page
from imgflow_upload_api.problems import PROBLEM_RESPONSE, Problem, image_not_found

router = APIRouter()

_DOWNLOAD_RESPONSES = {
    200: {"content": {"image/*": {}}, "description": "The bytes"},
    304: {"description": "Not modified (If-None-Match)"},
    307: {"description": "Redirect to a presigned S3 URL (IMGFLOW_API_DOWNLOADS=redirect)"},
    401: PROBLEM_RESPONSE,
    404: PROBLEM_RESPONSE,
    503: PROBLEM_RESPONSE,
}


@router.get(
    "/v1/images/{image_id}",
    response_model=ImageView,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="An image's metadata and the status of each processing stage",
)
async def get_image(image_id: str, request: Request, caller: CurrentCaller) -> ImageView:
    parsed = parse_id(image_id, image_not_found)
    async with resources(request).pool.acquire() as conn:
        record = await repository.fetch_image(conn, caller.tenant_id, parsed)
    if record is None:
        raise image_not_found(parsed)
    return image_view(record)


@router.get(
    "/v1/images",
    response_model=ImagePage,
    responses={400: PROBLEM_RESPONSE, 401: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE},
    summary="The caller's images, newest first, a page at a time",
    description=(
        "`cursor` is opaque: pass back the `next_cursor` of a page of this tenant's "
        "listing. Any other cursor, though it matches the schema, is refused: 400 "
        "`bad-cursor` (a cursor is bound to its tenant and listing by a check digest)."
    ),
)
async def list_images(
    request: Request,
    response: Response,
    caller: CurrentCaller,
    cursor: CursorParam = None,
    limit: Limit = DEFAULT_LIMIT,
    status: Annotated[Literal["processing", "ready", "failed"] | None, Query()] = None,
    created_after: Annotated[
        Rfc3339 | None, Query(description="RFC 3339; only images created after it.")
    ] = None,
    created_before: Annotated[
        Rfc3339 | None, Query(description="RFC 3339; only images created before it.")
    ] = None,
) -> ImagePage:
    start = after(cursor, caller.tenant_id, Listing.IMAGES)
    async with resources(request).pool.acquire() as conn:
        rows = await repository.fetch_page(
            conn,
            caller.tenant_id,
            after=start,
            status=status,
            created_after=created_after,
            created_before=created_before,
            limit=limit + 1,  # one more than asked says whether a next page exists
        )
    shown, next_cursor = page(
        rows,
        limit,
        keyset=("created_at", "id"),
        listing=Listing.IMAGES,
        tenant_id=caller.tenant_id,
        request=request,
        response=response,
    )
    return ImagePage(
        items=[
            ImageSummary(
                **{k: v for k, v in row.items() if k != "stages"},
                url=f"/v1/images/{row['id']}",
                stages=row["stages"],
            )
            for row in shown
        ],
        next_cursor=next_cursor,
    )


@router.delete(
    "/v1/images/{image_id}",
    status_code=204,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Delete an image: its records and every stored object; its jobs become no-ops",
)
async def delete(image_id: str, request: Request, caller: CurrentCaller) -> Response:
    parsed = parse_id(image_id, image_not_found)
    if not await delete_image(resources(request), caller.tenant_id, parsed):
        raise image_not_found(parsed)
    return Response(status_code=204)


@router.post(
    "/v1/images/{image_id}/restore",
    response_model=ImageView,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="Bring a trashed image back (a no-op for one not trashed); it is checked again",
)
async def restore_image(image_id: str, request: Request, caller: CurrentCaller) -> ImageView:
    parsed = parse_id(image_id, image_not_found)
    res = resources(request)
    if not await restore(res, caller.tenant_id, parsed):
        raise image_not_found(parsed)
    async with res.pool.acquire() as conn:
        record = await repository.fetch_image(conn, caller.tenant_id, parsed)
    if record is None:  # deleted meanwhile
        raise image_not_found(parsed)
    return image_view(record)


@router.post(
    "/v1/images/{image_id}/reprocess",
    status_code=202,
    response_model=ReprocessAccepted,
    responses={
        401: PROBLEM_RESPONSE,
        404: PROBLEM_RESPONSE,
        409: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
    },
    summary="Run stages of an image again (all of them when none are named)",
)
async def reprocess(
    image_id: str,
    request: Request,
    caller: CurrentCaller,
    body: Annotated[ReprocessRequest | None, Body()] = None,
) -> JSONResponse:
    parsed = parse_id(image_id, image_not_found)
    wanted = list(dict.fromkeys(body.stages)) if body is not None and body.stages else list(Stage)
    res = resources(request)
    try:
        async with res.pool.acquire() as conn:
            outbox_ids = await repository.reset_stages(conn, caller.tenant_id, parsed, wanted)
    except repository.StageRunning as exc:
        raise Problem(
            409,
            "stage-running",
            "Stage running",
            f"a worker is running {exc}; reprocess it once it has finished",
            stages=exc.stages,
        ) from exc
    if outbox_ids is None:
        raise image_not_found(parsed)
    res.relay.soon()  # as uploads do
    accepted = ReprocessAccepted(id=parsed, stages={stage: "pending" for stage in wanted})
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/images/{parsed}"},
    )


@router.get(
    "/v1/images/{image_id}/original",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
    summary="The uploaded bytes, as they were uploaded",
)
async def get_original(image_id: str, request: Request, caller: CurrentCaller) -> Response:
    parsed = parse_id(image_id, image_not_found)
    res = resources(request)
    async with res.pool.acquire() as conn:
        row = await repository.original_of(conn, caller.tenant_id, parsed)
    if row is None:
        raise image_not_found(parsed)
    download = Download(
        key=row["object_key"],
        etag=f'"{row["sha256"]}"',
        content_type=row["content_type"],
        cache_control=f"private, max-age={res.settings.api_original_max_age_s}, immutable",
    )
    return await serve(request, res, download, image_not_found(parsed))


@router.get(
    "/v1/images/{image_id}/thumbnails/{size}",
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
    summary="One rendition of the image (sizes as in the image's `renditions`)",
)
async def get_thumbnail(
    image_id: str, size: str, request: Request, caller: CurrentCaller
) -> Response:
    parsed = parse_id(image_id, image_not_found)
    res = resources(request)
    async with res.pool.acquire() as conn:
        keys = await repository.rendition_keys(conn, caller.tenant_id, parsed)
    if keys is None:
        raise image_not_found(parsed)
    missing = _rendition_not_found(parsed, size, sorted(keys))
    wanted = int(size) if size.isdigit() and len(size) <= 6 else None
    if wanted not in keys:
        raise missing
    download = Download(
        key=keys[wanted], cache_control=f"private, max-age={res.settings.api_rendition_max_age_s}"
    )
    return await serve(request, res, download, missing)


def _rendition_not_found(image_id: UUID, size: str, available: list[int]) -> Problem:
    return Problem(
        404,
        "rendition-not-found",
        "Rendition not found",
        f"image {image_id} has no {size!r} rendition"
        + ("" if available else " yet (its thumbnails stage has not finished)"),
        available_sizes=available,
    )

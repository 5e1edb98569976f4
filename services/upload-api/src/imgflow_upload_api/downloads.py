"""GET /v1/images/{id}/original and /v1/images/{id}/thumbnails/{size}: the bytes.

Streamed from S3 a chunk at a time (never whole in memory), with an ETag and caching
headers, and 304 for a matching If-None-Match; or, with IMGFLOW_API_DOWNLOADS=redirect,
a 307 to a short-lived presigned S3 URL, so the bytes bypass the API.

ETags: an original's is its SHA-256 (its key is content-addressed, so it never changes);
a rendition's is S3's ETag of the object, which changes whenever it is rewritten.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import urllib3
from fastapi import APIRouter, Request, Response
from minio.error import S3Error
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.lookup import PROBLEM_RESPONSE, image_not_found, parse_image_id, resources
from imgflow_upload_api.presigning import presigner
from imgflow_upload_api.problems import Problem

log = logging.getLogger(__name__)
router = APIRouter()

CHUNK = 256 * 1024
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")
_RESPONSES = {
    200: {"content": {"image/*": {}}, "description": "The bytes"},
    304: {"description": "Not modified (If-None-Match)"},
    307: {"description": "Redirect to a presigned S3 URL (IMGFLOW_API_DOWNLOADS=redirect)"},
    401: PROBLEM_RESPONSE,
    404: PROBLEM_RESPONSE,
    503: PROBLEM_RESPONSE,
}


@dataclass(frozen=True)
class Download:
    """What is known of an object before S3 is asked."""

    key: str
    cache_control: str
    etag: str | None = None  # when known without S3 (originals)
    content_type: str | None = None


class S3StreamResponse(StreamingResponse):
    """Streams an open S3 response and releases its connection however the send ends
    (completed, failed, or the client went away)."""

    def __init__(self, body: urllib3.BaseHTTPResponse, headers: dict[str, str]) -> None:
        self.s3_body = body
        super().__init__(self._chunks(), headers=headers)

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await asyncio.to_thread(self.s3_body.read, CHUNK):
            yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await asyncio.to_thread(_release, self.s3_body)


def _release(body: urllib3.BaseHTTPResponse) -> None:
    body.close()
    body.release_conn()


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of If-None-Match against our (strong) ETag."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(
        tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(",") if tag.strip()
    )


def _storage_unavailable() -> Problem:
    return Problem(
        503,
        "storage-unavailable",
        "Storage unavailable",
        "the object store cannot be reached; retry later",
        headers={"Retry-After": "5"},
    )


async def serve(request: Request, res: Resources, download: Download, gone: Problem) -> Response:
    settings = res.settings
    if_none_match = request.headers.get("if-none-match")
    cache = {"Cache-Control": download.cache_control}
    if download.etag is not None:
        cache["ETag"] = download.etag
        if etag_matches(if_none_match, download.etag):
            return Response(status_code=304, headers=cache)
    if settings.api_downloads == "redirect":
        url = await asyncio.to_thread(
            presigner(request).presigned_get, download.key, settings.api_download_url_ttl_s
        )
        # The redirect itself must not outlive the URL it points to.
        return Response(status_code=307, headers={"Location": url, "Cache-Control": "no-store"})
    try:
        body = await asyncio.to_thread(res.store.open_stream, download.key)
    except S3Error as exc:
        if exc.code in _MISSING:
            raise gone from exc  # deleted since its row was read
        raise _storage_unavailable() from exc
    except Exception as exc:
        log.warning("S3 GET of %s failed: %r", download.key, exc)
        raise _storage_unavailable() from exc
    headers = dict(cache)
    if "ETag" not in headers and (s3_etag := body.headers.get("ETag")):
        headers["ETag"] = s3_etag if s3_etag.startswith('"') else f'"{s3_etag}"'
        if etag_matches(if_none_match, headers["ETag"]):
            await asyncio.to_thread(_release, body)
            return Response(status_code=304, headers=headers)
    headers["Content-Type"] = download.content_type or body.headers.get(
        "Content-Type", "application/octet-stream"
    )
    if length := body.headers.get("Content-Length"):
        headers["Content-Length"] = length
    return S3StreamResponse(body, headers)


@router.get(
    "/v1/images/{image_id}/original",
    response_class=Response,
    responses=_RESPONSES,
    summary="The uploaded bytes, as they were uploaded",
)
async def get_original(image_id: str, request: Request, caller: CurrentCaller) -> Response:
    parsed = parse_image_id(image_id)
    res = resources(request)
    async with res.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT object_key, sha256, content_type FROM images WHERE id = $1 AND tenant_id = $2",
            parsed,
            caller.tenant_id,
        )
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
    responses=_RESPONSES,
    summary="One rendition of the image (sizes as in the image's `renditions`)",
)
async def get_thumbnail(
    image_id: str, size: str, request: Request, caller: CurrentCaller
) -> Response:
    parsed = parse_image_id(image_id)
    res = resources(request)
    async with res.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT r.size, r.object_key FROM images AS i
                 LEFT JOIN renditions AS r ON r.image_id = i.id
                WHERE i.id = $1 AND i.tenant_id = $2
                ORDER BY r.size""",
            parsed,
            caller.tenant_id,
        )
    if not rows:
        raise image_not_found(parsed)
    keys = {r["size"]: r["object_key"] for r in rows if r["size"] is not None}
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

"""Serving stored bytes: streamed from S3 a chunk at a time (never whole in memory), with
an ETag and caching headers, and 304 for a matching If-None-Match; or, with
IMGFLOW_API_DOWNLOADS=redirect, a 307 to a short-lived presigned S3 URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import urllib3
from fastapi import Request, Response
from minio.error import S3Error
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from imgflow_upload_api.dependencies import Resources, presigner
from imgflow_upload_api.problems import Problem

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")


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

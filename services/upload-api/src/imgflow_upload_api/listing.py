"""GET /v1/images: the caller's images, newest first, in pages joined by opaque cursors.

Keyset pagination on (created_at, id), the order of the index images_tenant_created: a
page costs the same however deep it is, and an image uploaded while a client pages is
newer than every cursor, so it never shifts or repeats the pages that follow.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, BaseModel

from imgflow_contracts.queues import Stage
from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.lookup import PROBLEM_RESPONSE, resources
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.views import ImageStatus, StageStatus

router = APIRouter()

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

# The image's status from its stage rows, as views.overall_status computes it in Python.
_STATUS_SQL = """CASE WHEN bool_or(s.status = 'failed') THEN 'failed'
                      WHEN count(*) > 0 AND bool_and(s.status = 'done') THEN 'ready'
                      ELSE 'processing' END"""


class ImageSummary(BaseModel):
    id: UUID
    url: str
    status: ImageStatus
    stages: dict[Stage, StageStatus]
    content_type: str
    byte_size: int
    sha256: str
    format: str | None
    width: int | None
    height: int | None
    created_at: datetime


class ImagePage(BaseModel):
    items: list[ImageSummary]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: str | None


class Cursor:
    """The position after the last row of a page, bound to the tenant it was made for.

    Opaque to clients: base64url of JSON with a check digest, so a garbled, truncated or
    edited cursor, or one of another tenant, is refused rather than read as a position.
    """

    def __init__(self, created_at: datetime, image_id: UUID) -> None:
        self.created_at = created_at
        self.image_id = image_id

    @staticmethod
    def _check(tenant_id: UUID, position: list[str]) -> str:
        digest = hashlib.sha256(f"{tenant_id}|{position[0]}|{position[1]}".encode())
        return digest.hexdigest()[:16]

    def encode(self, tenant_id: UUID) -> str:
        position = [self.created_at.isoformat(), str(self.image_id)]
        raw = json.dumps({"p": position, "c": self._check(tenant_id, position)}).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str, tenant_id: UUID) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            position = data["p"]
            if data["c"] != cls._check(tenant_id, position):
                raise ValueError("check digest mismatch")
            created_at = datetime.fromisoformat(position[0])
            if created_at.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(created_at, UUID(position[1]))
        except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError):
            raise Problem(
                400,
                "bad-cursor",
                "Bad cursor",
                "the cursor is not one this API issued; start again without it",
            ) from None


async def fetch_page(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    *,
    after: Cursor | None,
    status: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` summaries, newest first, strictly after the cursor's position."""
    where = ["i.tenant_id = $1"]
    args: list[Any] = [tenant_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if after is not None:
        where.append(f"(i.created_at, i.id) < ({arg(after.created_at)}, {arg(after.image_id)})")
    if created_after is not None:
        where.append(f"i.created_at > {arg(created_after)}")
    if created_before is not None:
        where.append(f"i.created_at < {arg(created_before)}")
    if status is not None:
        where.append(f"st.status = {arg(status)}")
    rows = await conn.fetch(
        f"""SELECT i.id, i.created_at, i.content_type, i.byte_size, i.sha256, i.format,
                   i.width, i.height, st.status, st.stages
              FROM images AS i
             CROSS JOIN LATERAL (
                   SELECT {_STATUS_SQL} AS status,
                          coalesce(jsonb_object_agg(s.stage, s.status), '{{}}') AS stages
                     FROM image_stages AS s WHERE s.image_id = i.id) AS st
             WHERE {" AND ".join(where)}
             ORDER BY i.created_at DESC, i.id DESC
             LIMIT {arg(limit)}""",
        *args,
    )
    return [dict(r) for r in rows]


@router.get(
    "/v1/images",
    response_model=ImagePage,
    responses={400: PROBLEM_RESPONSE, 401: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE},
    summary="The caller's images, newest first, a page at a time",
)
async def list_images(
    request: Request,
    response: Response,
    caller: CurrentCaller,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page.", max_length=512)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    status: Annotated[Literal["processing", "ready", "failed"] | None, Query()] = None,
    created_after: Annotated[
        AwareDatetime | None, Query(description="RFC 3339; only images created after it.")
    ] = None,
    created_before: Annotated[
        AwareDatetime | None, Query(description="RFC 3339; only images created before it.")
    ] = None,
) -> ImagePage:
    after = Cursor.decode(cursor, caller.tenant_id) if cursor is not None else None
    async with resources(request).pool.acquire() as conn:
        rows = await fetch_page(
            conn,
            caller.tenant_id,
            after=after,
            status=status,
            created_after=created_after,
            created_before=created_before,
            limit=limit + 1,  # one more than asked says whether a next page exists
        )
    page, more = rows[:limit], len(rows) > limit
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = Cursor(last["created_at"], last["id"]).encode(caller.tenant_id)
        next_url = request.url.include_query_params(cursor=next_cursor)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return ImagePage(
        items=[
            ImageSummary(
                **{k: v for k, v in row.items() if k != "stages"},
                url=f"/v1/images/{row['id']}",
                stages=row["stages"],
            )
            for row in page
        ],
        next_cursor=next_cursor,
    )

"""Duplicates of an image, as the deduper recorded them: GET /v1/images/{id}/duplicates.

Pairs are stored once each (image_a < image_b) with the signal that decided them; an
image's group is every image reachable through pairs (duplicates of duplicates), since
near-duplicate judgements are not transitive on their own but a user reviews them as one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Request
from pydantic import BaseModel

from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.problems import PROBLEM_MEDIA_TYPE, Problem

router = APIRouter()

# Largest group returned; a bigger one is cut (and says so).
MAX_GROUP = 1000

DuplicateMethod = Literal["sha256", "cnn", "phash", "cnn+phash"]


class DuplicateView(BaseModel):
    id: UUID
    method: DuplicateMethod
    score: float
    cosine: float | None  # of the whole images
    view_cosine: float | None  # best whole frame against the other's 80 % crops
    phash_distance: int | None
    found_at: datetime


class DuplicatesView(BaseModel):
    id: UUID
    # When the deduper last checked this image; null while its dedupe stage is pending.
    checked_at: datetime | None
    duplicates: list[DuplicateView]
    group: list[UUID]
    group_truncated: bool


async def fetch_duplicates(conn: asyncpg.Connection, image_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT CASE WHEN p.image_a = $1 THEN p.image_b ELSE p.image_a END AS id,
                  p.method, p.score, p.cosine, p.view_cosine, p.phash_distance, p.found_at
             FROM duplicate_pairs AS p
            WHERE p.image_a = $1 OR p.image_b = $1
            ORDER BY p.score DESC, id""",
        image_id,
    )
    return [dict(r) for r in rows]


async def fetch_group(conn: asyncpg.Connection, image_id: UUID) -> list[UUID]:
    """The connected component of ``image_id`` in the duplicate graph, itself included."""
    rows = await conn.fetch(
        """WITH RECURSIVE grp(id) AS (
               SELECT $1::uuid
               UNION
               SELECT CASE WHEN p.image_a = g.id THEN p.image_b ELSE p.image_a END
                 FROM grp AS g JOIN duplicate_pairs AS p
                   ON p.image_a = g.id OR p.image_b = g.id
           )
           SELECT id FROM grp LIMIT $2""",
        image_id,
        MAX_GROUP + 1,
    )
    return sorted(r["id"] for r in rows)


@router.get(
    "/v1/images/{image_id}/duplicates",
    response_model=DuplicatesView,
    responses={
        401: {"content": {PROBLEM_MEDIA_TYPE: {}}, "description": "RFC 9457 problem"},
        404: {"content": {PROBLEM_MEDIA_TYPE: {}}, "description": "RFC 9457 problem"},
    },
    summary="Images the deduper judged duplicates of this one, and its duplicate group",
)
async def get_duplicates(image_id: str, request: Request, caller: CurrentCaller) -> DuplicatesView:
    try:
        parsed = UUID(image_id)
    except ValueError:
        parsed = None
    pool: asyncpg.Pool = request.app.state.resources.pool
    async with pool.acquire() as conn:
        checked = None
        if parsed is not None:
            checked = await conn.fetchrow(
                """SELECT d.checked_at FROM images AS i
                     LEFT JOIN duplicate_checks AS d ON d.image_id = i.id
                    WHERE i.id = $1 AND i.tenant_id = $2""",
                parsed,
                caller.tenant_id,
            )
        if parsed is None or checked is None:
            raise Problem(
                404, "image-not-found", "Image not found", f"no image has the id {image_id!r}"
            )
        duplicates = await fetch_duplicates(conn, parsed)
        group = await fetch_group(conn, parsed) if duplicates else [parsed]
    return DuplicatesView(
        id=parsed,
        checked_at=checked["checked_at"],
        duplicates=[DuplicateView(**d) for d in duplicates],
        group=group[:MAX_GROUP],
        group_truncated=len(group) > MAX_GROUP,
    )

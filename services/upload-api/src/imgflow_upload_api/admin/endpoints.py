"""Operator endpoints: list and replay dead letters. Bearer-token protected; off unless
IMGFLOW_ADMIN_TOKEN is set. The same operations exist as the ``imgflow-admin`` CLI."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from pydantic import BaseModel

from imgflow_runtime.db import dead_letters
from imgflow_upload_api.dependencies import Resources, resources
from imgflow_upload_api.problems import PROBLEM_RESPONSE, Problem

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ReplayAccepted(BaseModel):
    id: int
    status: str = "replayed"


def _authorised(request: Request) -> Resources:
    """The admin bearer token, or 401 (no or wrong credentials: as on every other route,
    a request without them learns nothing more); 403 when the admin API is off."""
    res = resources(request)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise _unauthorised()
    token = res.settings.admin_token
    if token is None:
        raise Problem(
            403,
            "admin-disabled",
            "Admin API disabled",
            "set IMGFLOW_ADMIN_TOKEN to turn the admin API on",
        )
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise _unauthorised()
    return res


def _unauthorised() -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Unauthorized",
        "a valid admin bearer token is needed",
        headers={"WWW-Authenticate": 'Bearer realm="imgflow-admin"'},
    )


@router.get(
    "/dead-letters",
    response_model=list[dead_letters.DeadLetter],
    responses={401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE},
)
async def list_dead_letters(
    request: Request, include_resolved: bool = False, limit: int = 100
) -> list[dead_letters.DeadLetter]:
    res = _authorised(request)
    async with res.pool.acquire() as conn:
        found = await dead_letters.list_dead_letters(
            conn, include_resolved=include_resolved, limit=max(1, min(limit, 1000))
        )
    return found


@router.post(
    "/dead-letters/{dead_letter_id}/replay",
    status_code=202,
    response_model=ReplayAccepted,
    responses={401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE},
)
async def replay_dead_letter(dead_letter_id: int, request: Request) -> ReplayAccepted:
    res = _authorised(request)
    try:
        async with res.pool.acquire() as conn:
            await dead_letters.replay(conn, dead_letter_id)
    except dead_letters.NotReplayable as exc:
        raise Problem(409, "not-replayable", "Not replayable", str(exc)) from exc
    res.relay.soon()
    return ReplayAccepted(id=dead_letter_id)

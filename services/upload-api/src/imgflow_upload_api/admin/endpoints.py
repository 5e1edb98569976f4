"""Operator endpoints: list and replay dead letters, start and follow bulk reprocess
runs, read and set a tenant's limits. Bearer-token protected; off unless
IMGFLOW_ADMIN_TOKEN is set. The same operations exist as the ``imgflow-admin`` CLI."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from imgflow_runtime.db import dead_letters, tenants
from imgflow_upload_api.admin import service
from imgflow_upload_api.admin.schemas import ReprocessAllTenants, ReprocessRun, ReprocessTenant
from imgflow_upload_api.dependencies import Resources, parse_id, resources
from imgflow_upload_api.problems import PROBLEM_RESPONSE, Problem
from imgflow_upload_api.tenants import service as tenant_service
from imgflow_upload_api.tenants.schemas import LimitsUpdate, TenantLimits

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
async def replay_dead_letter(
    # dead_letters.id is a bigint: a number past it is a 422, not an overflow (500) in asyncpg
    dead_letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    request: Request,
) -> ReplayAccepted:
    res = _authorised(request)
    try:
        async with res.pool.acquire() as conn:
            await dead_letters.replay(conn, dead_letter_id)
    except dead_letters.NotReplayable as exc:
        raise Problem(409, "not-replayable", "Not replayable", str(exc)) from exc
    res.relay.soon()
    return ReplayAccepted(id=dead_letter_id)


@router.post(
    "/reprocess",
    status_code=202,
    response_model=ReprocessRun,
    responses={401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="Start a run that re-drives stages for every image of a tenant, or of all",
)
async def start_reprocess(
    request: Request, body: Annotated[ReprocessTenant | ReprocessAllTenants, Body()]
) -> JSONResponse:
    res = _authorised(request)
    async with res.pool.acquire() as conn:
        run = await service.start_run(conn, body, res.settings.reprocess_batch_size)
    return JSONResponse(
        run.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/admin/reprocess/{run.id}"},
    )


@router.get(
    "/reprocess/{run_id}",
    response_model=ReprocessRun,
    responses={401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="A reprocess run's progress",
)
async def get_reprocess(run_id: str, request: Request) -> ReprocessRun:
    res = _authorised(request)
    parsed = parse_id(run_id, service.run_not_found)
    async with res.pool.acquire() as conn:
        return await service.progress(conn, parsed)


@router.get(
    "/tenants/{tenant}/limits",
    response_model=TenantLimits,
    responses={401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="A tenant's limits: as configured, and as they apply",
)
async def get_limits(tenant: str, request: Request) -> TenantLimits:
    res = _authorised(request)
    try:
        async with res.pool.acquire() as conn:
            return await tenant_service.limits_of(conn, tenant, res.admission.defaults)
    except tenants.TenantError as exc:
        raise _no_tenant(tenant) from exc


@router.patch(
    "/tenants/{tenant}/limits",
    response_model=TenantLimits,
    responses={
        401: PROBLEM_RESPONSE,
        403: PROBLEM_RESPONSE,
        404: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
    },
    summary="Set a tenant's limits (null: back to the default); applies within "
    "IMGFLOW_TENANT_LIMITS_CACHE_S",
)
async def set_limits(
    tenant: str, request: Request, body: Annotated[LimitsUpdate, Body()]
) -> TenantLimits:
    res = _authorised(request)
    try:
        async with res.pool.acquire() as conn:
            return await tenant_service.set_limits(
                conn, tenant, body.model_dump(exclude_unset=True), res.admission.defaults
            )
    except tenants.TenantError as exc:
        raise _no_tenant(tenant) from exc


def _no_tenant(name: str) -> Problem:
    return Problem(404, "tenant-not-found", "Tenant not found", f"no tenant {name!r}")

"""GET /v1/usage: what the calling tenant stores, has waiting, and may do."""

from __future__ import annotations

from fastapi import APIRouter, Request

from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import resources
from imgflow_upload_api.problems import PROBLEM_RESPONSE
from imgflow_upload_api.tenants import service
from imgflow_upload_api.tenants.schemas import Usage

router = APIRouter()


@router.get(
    "/v1/usage",
    response_model=Usage,
    responses={401: PROBLEM_RESPONSE, 503: PROBLEM_RESPONSE},
    summary="Your tenant's storage, waiting jobs and limits",
)
async def get_usage(request: Request, caller: CurrentCaller) -> Usage:
    res = resources(request)
    async with res.pool.acquire() as conn:
        return await service.usage(
            conn,
            caller.tenant_id,
            caller.tenant_name,
            res.admission.defaults,
            await res.admission.in_progress(res.pool, caller.tenant_id),
        )

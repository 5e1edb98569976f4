"""The tenant's limits around an upload, for POST /v1/images and a presigned upload's
completion alike: a refusal becomes its problem document (tenants/limits.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.tenants.admission import Admitted
from imgflow_upload_api.tenants.limits import Refusal


@contextlib.asynccontextmanager
async def within_limits(
    res: Resources, tenant: UUID, incoming_bytes: int | None
) -> AsyncIterator[Admitted]:
    """Hold one of the tenant's upload slots for the block, or raise its 429/403; a
    tenant with a backlog may first wait for light tenants' work (tenants/light_first.py)."""
    queued = res.backpressure.queued(tenant)
    backlog = queued > res.settings.outbox_express_max_waiting
    async with res.light_first.turn(tenant, backlog):
        try:
            admitted = await res.admission.admit(
                res.pool, tenant, queued, incoming_bytes, res.backpressure.retry_after_s
            )
        except Refusal as refusal:
            raise Problem(
                refusal.status,
                refusal.code,
                refusal.title,
                refusal.detail,
                headers=refusal.headers,
                **refusal.extensions,
            ) from refusal
        try:
            yield admitted
        finally:
            await res.admission.release(admitted)

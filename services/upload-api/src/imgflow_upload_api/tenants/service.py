"""Usage and limits of a tenant, as the tenant and the operator see them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from imgflow_runtime.db import tenant_limits
from imgflow_upload_api.settings import ApiSettings
from imgflow_upload_api.tenants.limits import Defaults, Effective
from imgflow_upload_api.tenants.schemas import LimitValues, TenantLimits, Usage


def tenant_defaults(settings: ApiSettings) -> Defaults:
    return Defaults(
        weight=settings.tenant_default_weight,
        upload_rate_per_s=settings.tenant_upload_rate_per_s,
        upload_burst=settings.tenant_upload_burst,
        upload_concurrency=settings.tenant_upload_concurrency,
        max_queued_jobs=settings.tenant_max_queued_jobs,
    )


async def usage(
    conn: asyncpg.Connection, tenant: UUID, name: str, defaults: Defaults, in_progress: int
) -> Usage:
    used = await tenant_limits.get_usage(conn, tenant)
    limits = Effective.of(await tenant_limits.get_limits(conn, tenant), defaults)
    return Usage(
        tenant=name,
        images=used.images,
        bytes=used.bytes,
        queued_jobs={"upload": 0, "bulk": 0, **used.queued_jobs},
        uploads_in_progress=in_progress,
        limits=LimitValues(**limits.as_json()),
    )


async def limits_of(conn: asyncpg.Connection, name: str, defaults: Defaults) -> TenantLimits:
    """Raises TenantError for an unknown tenant."""
    tenant = await tenant_limits.tenant_id(conn, name)
    configured = await tenant_limits.get_limits(conn, tenant)
    return _view(name, configured, defaults)


async def set_limits(
    conn: asyncpg.Connection, name: str, changes: dict[str, Any], defaults: Defaults
) -> TenantLimits:
    """Raises TenantError for an unknown tenant."""
    tenant = await tenant_limits.tenant_id(conn, name)
    clear = [k for k, v in changes.items() if v is None]
    given = {k: v for k, v in changes.items() if v is not None}
    configured = await tenant_limits.set_limits(conn, tenant, given, clear)
    return _view(name, configured, defaults)


def _view(name: str, configured: tenant_limits.Limits, defaults: Defaults) -> TenantLimits:
    return TenantLimits(
        tenant=name,
        configured=LimitValues(**configured.as_json()),
        effective=LimitValues(**Effective.of(configured, defaults).as_json()),
    )

"""Per-tenant limits and usage (migration 0015), shared by the admin API and CLI.

A limit left NULL falls back to the deployment's default (IMGFLOW_TENANT_* settings),
which may be no limit at all; ``clear`` puts one back to that default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_runtime.db import tenants


@dataclass(frozen=True)
class Limits:
    """What is set for one tenant; None: the deployment's default."""

    weight: int | None = None
    upload_rate_per_s: float | None = None
    upload_burst: int | None = None
    upload_concurrency: int | None = None
    max_queued_jobs: int | None = None
    max_images: int | None = None
    max_bytes: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


LIMIT_NAMES = tuple(f.name for f in fields(Limits))


@dataclass(frozen=True)
class Usage:
    images: int
    bytes: int
    queued_jobs: dict[str, int]


async def tenant_id(conn: asyncpg.Connection, name: str) -> UUID:
    found = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", name)
    if found is None:
        raise tenants.TenantError(f"no tenant {name}")
    return found  # type: ignore[no-any-return]


async def get_limits(conn: asyncpg.Connection, tenant: UUID) -> Limits:
    row = await conn.fetchrow(
        f"SELECT {', '.join(LIMIT_NAMES)} FROM tenant_limits WHERE tenant_id = $1", tenant
    )
    return Limits(**dict(row)) if row is not None else Limits()


async def set_limits(
    conn: asyncpg.Connection, tenant: UUID, changes: dict[str, Any], clear: list[str]
) -> Limits:
    """Set the named limits (and put those in ``clear`` back to the default); the
    others keep their value. Raises ValueError for an unknown name; the table's checks
    raise asyncpg.CheckViolationError for an out-of-range value."""
    unknown = (set(changes) | set(clear)) - set(LIMIT_NAMES)
    if unknown:
        raise ValueError(f"unknown limits: {', '.join(sorted(unknown))}")
    values = {**changes, **dict.fromkeys(clear)}
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO tenant_limits (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", tenant
        )
        if values:
            assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(values))
            await conn.execute(
                f"UPDATE tenant_limits SET {assignments}, updated_at = now() WHERE tenant_id = $1",
                tenant,
                *values.values(),
            )
    return await get_limits(conn, tenant)


async def get_usage(conn: asyncpg.Connection, tenant: UUID) -> Usage:
    row = await conn.fetchrow(
        """SELECT coalesce(u.images, 0) AS images, coalesce(u.bytes, 0) AS bytes,
                  (SELECT coalesce(jsonb_object_agg(kind, n), '{}')
                     FROM (SELECT kind, count(*) AS n FROM outbox WHERE tenant_id = $1
                            GROUP BY kind) AS q) AS queued
             FROM (VALUES ($1::uuid)) AS t (id)
             LEFT JOIN tenant_usage AS u ON u.tenant_id = t.id""",
        tenant,
    )
    assert row is not None
    # pooled connections decode jsonb (db/pool.py)
    return Usage(row["images"], row["bytes"], {k: int(v) for k, v in row["queued"].items()})

"""Bulk reprocess runs: start one, read its progress. The batches are driven by
``tasks.drive_reprocess`` in every replica."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from imgflow_runtime.db import reprocess_runs
from imgflow_upload_api.admin.schemas import ReprocessAllTenants, ReprocessRun, ReprocessTenant
from imgflow_upload_api.problems import Problem


def run_not_found(run_id: object) -> Problem:
    return Problem(
        404, "reprocess-run-not-found", "Reprocess run not found", f"no reprocess run {run_id}"
    )


def answer(run: reprocess_runs.Run) -> ReprocessRun:
    return ReprocessRun.model_validate(run, from_attributes=True)


async def start_run(
    conn: asyncpg.Connection, body: ReprocessTenant | ReprocessAllTenants, batch_size: int
) -> ReprocessRun:
    tenant = body.tenant if isinstance(body, ReprocessTenant) else None
    try:
        run = await reprocess_runs.create_run(conn, tenant, body.stages, batch_size)
    except reprocess_runs.UnknownTenant as exc:
        raise Problem(404, "tenant-not-found", "Tenant not found", f"no tenant {exc}") from exc
    return answer(run)


async def progress(conn: asyncpg.Connection, run_id: UUID) -> ReprocessRun:
    run = await reprocess_runs.get_run(conn, run_id)
    if run is None:
        raise run_not_found(run_id)
    return answer(run)

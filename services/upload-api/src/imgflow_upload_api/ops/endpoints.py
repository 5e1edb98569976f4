"""The operators' routes: liveness, readiness, and Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from imgflow_contracts.queues import Stage
from imgflow_runtime.db.outbox import KINDS
from imgflow_upload_api.dependencies import resources
from imgflow_upload_api.ops.repository import read_backlog
from imgflow_upload_api.problems import PROBLEM_RESPONSE, Problem

router = APIRouter()

_UNAVAILABLE = {"Retry-After": "5"}


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: PostgreSQL, the broker and S3 answer",
    responses={503: PROBLEM_RESPONSE},
)
async def readyz(request: Request) -> dict[str, Any]:
    res = resources(request)

    async def postgres() -> None:
        async with res.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    checks = {
        "postgres": postgres(),
        "broker": asyncio.to_thread(res.broker.ping),
        "s3": asyncio.to_thread(res.store.ping),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(c, timeout=3) for c in checks.values()), return_exceptions=True
    )
    status = {
        name: ("ok" if not isinstance(r, BaseException) else f"{type(r).__name__}: {r}")
        for name, r in zip(checks, results, strict=True)
    }
    if any(v != "ok" for v in status.values()):
        raise Problem(
            503,
            "not-ready",
            "Not ready",
            "a dependency is unreachable",
            headers=_UNAVAILABLE,
            checks=status,
        )
    return {"status": "ready", "checks": status}


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    res = resources(request)
    metrics = res.metrics
    with contextlib.suppress(Exception):  # a scrape must not fail when Redis is down
        for queue, depth in (await res.queue_depths()).items():
            metrics.queue_depth.labels(queue).set(depth)
    with contextlib.suppress(Exception):  # nor when PostgreSQL is
        async with res.pool.acquire() as conn:
            backlog = await read_backlog(conn)
        metrics.outbox_pending.set(backlog.outbox)
        metrics.dead_letters_open.set(backlog.dead_letters_open)
        for stage in Stage:
            metrics.oldest_waiting.labels(stage.value).set(
                backlog.oldest_waiting_s.get(stage.value, 0.0)
            )
        for kind in KINDS:
            metrics.backlog_jobs.labels(kind).set(backlog.by_kind.get(kind, 0))
            metrics.backlog_oldest.labels(kind).set(backlog.oldest_by_kind_s.get(kind, 0.0))
        # Only the tenants holding the most now: a tenant that drained drops out.
        metrics.tenant_backlog.clear()
        for tenant, jobs in backlog.by_tenant.items():
            metrics.tenant_backlog.labels(tenant).set(jobs)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

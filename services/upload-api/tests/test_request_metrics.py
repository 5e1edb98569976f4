"""The request metrics middleware: counted by route template and status, timed to the
response's start."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from imgflow_upload_api.app import ObserveRequests
from imgflow_upload_api.ops.metrics import ApiMetrics


def test_requests_are_counted_by_route_template_and_status() -> None:
    metrics = ApiMetrics()
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.add_middleware(ObserveRequests, metrics=metrics)

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/things/1")).status_code == 200
            assert (await client.get("/things/2")).status_code == 200
            assert (await client.get("/nowhere")).status_code == 404

    asyncio.run(run())
    sample = metrics.registry.get_sample_value
    ok = {"method": "GET", "route": "/things/{thing_id}", "status": "200"}
    assert sample("imgflow_http_requests_total", ok) == 2
    missing = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample("imgflow_http_requests_total", missing) == 1
    timed = {"method": "GET", "route": "/things/{thing_id}"}
    assert sample("imgflow_http_request_duration_seconds_count", timed) == 2

"""The request metrics middleware: counted by route template and status, timed to the
response's start (observed before the body is sent)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

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


def test_a_request_is_timed_to_its_response_start_not_its_body() -> None:
    """Observed when the response starts: a body still being produced (a long download,
    a stream) is not in the latency."""
    metrics = ApiMetrics()
    # A route label of its own, apart from the other test's requests.
    route = SimpleNamespace(path="/streams/{stream_id}")
    timed = {"method": "GET", "route": route.path}
    count = "imgflow_http_request_duration_seconds_count"
    seen_before_body: list[float | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = route  # as the router leaves it
        await send({"type": "http.response.start", "status": 200, "headers": []})
        # The body has not started: the request must already be observed.
        seen_before_body.append(metrics.registry.get_sample_value(count, timed))
        await send({"type": "http.response.body", "body": b"late", "more_body": False})

    async def run() -> None:
        transport = httpx.ASGITransport(app=ObserveRequests(app, metrics=metrics))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/stream")).content == b"late"

    asyncio.run(run())
    assert seen_before_body == [1]

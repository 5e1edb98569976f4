"""The baseline of the `api` suite: the naive upload handler, run as its own server.

It reads the whole body into memory, hashes it and PUTs it to S3 with the synchronous
client, all on the event loop, then answers 201: what an async handler written without
care looks like. It does less than imgflow's API (no key lookup, no validation, no
PostgreSQL), so its latency flatters it; its event-loop lag is the point of comparison.
Started by bench/api.py with the stack's IMGFLOW_* environment:

    python bench/naive_api.py PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from imgflow_contracts.settings import CommonSettings
from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.ops.loop_lag import LoopLag


def create_app() -> FastAPI:
    settings = CommonSettings()
    store = ObjectStore.from_settings(settings)
    registry = CollectorRegistry()
    lag = LoopLag(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.ensure_bucket()
        probe = asyncio.create_task(lag.run())
        yield
        probe.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/images")
    async def upload(request: Request) -> JSONResponse:
        body = await request.body()
        digest = hashlib.sha256(body).hexdigest()
        store.put_bytes(f"naive/{digest}", body, "image/jpeg")  # blocks the loop
        return JSONResponse({"sha256": digest}, status_code=201)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

"""/healthz and /metrics on one small HTTP server (Kubernetes probes, Prometheus)."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def health_app(registry: CollectorRegistry, last_pass_at: Callable[[], float], stale_s: float):
    """Healthy while the loop completed a pass (PostgreSQL reachable) within ``stale_s``."""

    async def healthz(_: web.Request) -> web.Response:
        age = time.monotonic() - last_pass_at()
        if age > stale_s:
            return web.json_response(
                {"status": "stale", "last_pass_s_ago": round(age, 1)}, status=503
            )
        return web.json_response({"status": "ok", "last_pass_s_ago": round(age, 1)})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app

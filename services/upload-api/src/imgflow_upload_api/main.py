"""Console entry point (``imgflow-api``)."""

from __future__ import annotations

import uvicorn

from imgflow_upload_api.app import create_app
from imgflow_upload_api.settings import ApiSettings


def main() -> None:
    settings = ApiSettings()
    # uvicorn drains in-flight requests on SIGTERM before the lifespan closes the pool.
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()

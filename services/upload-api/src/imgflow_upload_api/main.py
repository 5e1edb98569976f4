"""Console entry point (``imgflow-api``)."""

from __future__ import annotations

import uvicorn

from imgflow_upload_api.app import create_app
from imgflow_upload_api.settings import ApiSettings

# On SIGTERM uvicorn stops accepting connections at once, lets requests in flight (a body
# still streaming in, an S3 PUT) finish for up to this long, then runs the lifespan
# shutdown (stops the outbox relay and sweeper, closes the pools). Every grace period
# around the API (the pod's terminationGracePeriodSeconds less its preStop sleep, compose's
# stop_grace_period, localstack's stop timeout) must exceed it.
DRAIN_TIMEOUT_S = 20


def main() -> None:
    settings = ApiSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        timeout_graceful_shutdown=DRAIN_TIMEOUT_S,
    )


if __name__ == "__main__":
    main()

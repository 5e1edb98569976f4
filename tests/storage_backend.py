"""An S3 container for the storage contract tests (tests/s3_targets.py's targets, plus one).

    IMGFLOW_TEST_STORAGE=container .venv/bin/python -m pytest tests/test_s3_writer.py

adds a "container" target to the session's SeaweedFS and moto: it starts
`IMGFLOW_MINIO_IMAGE` (default: the official MinIO image the Compose file runs) through
testcontainers on whatever engine DOCKER_HOST names (Docker, or Podman's Docker
API), and runs the same tests against it. The deployment test's stand-in works too:
IMGFLOW_MINIO_IMAGE=localhost/imgflow-standin/s3:<tag> (tests/deploy/prepare.sh prints it).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from minio import Minio
from pydantic import SecretStr

from imgflow_contracts.settings import CommonSettings
from tests.support import wait_for

DEFAULT_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"


def wants_container() -> bool:
    return os.environ.get("IMGFLOW_TEST_STORAGE", "local") == "container"


@contextmanager
def s3_container(base: CommonSettings) -> Iterator[CommonSettings]:
    """An S3 server in a container, and `base` pointed at it (bucket created)."""
    # Ryuk, testcontainers' reaper, is an image of its own (not pullable everywhere);
    # the context manager removes the container instead. A local engine (a unix socket,
    # Podman's included) publishes on this host: no gateway or bridge address guessing.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    if os.environ.get("DOCKER_HOST", "unix://").startswith("unix://"):
        os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
        os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
    # Imported here, after its settings: only this mode needs the engine client.
    from testcontainers.core.container import DockerContainer

    key, secret = "imgflow-test", secrets.token_hex(16)
    container = (
        DockerContainer(os.environ.get("IMGFLOW_MINIO_IMAGE", DEFAULT_IMAGE))
        .with_env("MINIO_ROOT_USER", key)
        .with_env("MINIO_ROOT_PASSWORD", secret)
        .with_command("server /data")
        .with_exposed_ports(9000)
    )
    with container:
        endpoint = f"{container.get_container_host_ip()}:{container.get_exposed_port(9000)}"
        client = Minio(endpoint, key, secret, secure=False)

        def ready() -> bool:
            try:
                client.list_buckets()
            except Exception:  # not listening yet, or still starting its store
                return False
            return True

        wait_for(ready, timeout_s=60, what=f"S3 in {container.image}")
        settings = base.model_copy(
            update={
                "s3_endpoint": endpoint,
                "s3_access_key": key,
                "s3_secret_key": SecretStr(secret),
                "s3_secure": False,
            }
        )
        client.make_bucket(settings.s3_bucket)
        yield settings

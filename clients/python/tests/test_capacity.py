"""Real 503s and multipart uploads, from a small system of this module's own: PostgreSQL,
Valkey, SeaweedFS and the API with a breaking depth of 2 and no workers (so jobs stay
queued), and presigned uploads above 6 MiB in 5 MiB parts. No server is mocked: the
503s are the API's own backpressure and its answer when S3 is down.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image as PilImage

from imgflow_client import Client, MemoryResumeStore, RetryNotice
from imgflow_client.files import sha256_bytes
from imgflow_contracts.settings import ENV_PREFIX
from imgflow_localstack.services import API, service_specs
from imgflow_localstack.system import LocalSystem
from tests.support import encode, new_tenant, photo_like, wait_for

from .conftest import Cli, Tenant, summary_of, write_photos

BREAKING_DEPTH = 2
PART = 5 * 1024 * 1024
SETTINGS = {
    "QUEUE_BREAKING_DEPTH": str(BREAKING_DEPTH),
    "QUEUE_DEPTH_REFRESH_S": "0.1",
    "UPLOAD_MULTIPART_THRESHOLD_BYTES": str(6 * 1024 * 1024),
    "UPLOAD_PART_SIZE_BYTES": str(PART),
}


@pytest.fixture(scope="module")
def small_system() -> Iterator[LocalSystem]:
    data_dir = Path(tempfile.mkdtemp(prefix="imgflow-client-capacity-"))
    system = LocalSystem.on_free_ports(data_dir)
    system.specs = [s for s in service_specs(system.api_port) if s.name == API]
    try:
        with _settings_while_starting(system):
            yield system
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def _settings_while_starting(system: LocalSystem) -> Iterator[None]:
    """The API inherits SETTINGS when it starts; the variables are put back at once, so
    no other system of the session (started later by another fixture) inherits them."""
    overrides = {f"{ENV_PREFIX}{k}": v for k, v in SETTINGS.items()}
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        system.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield
    finally:
        system.stop()


@pytest.fixture
def quiet(small_system: LocalSystem) -> Iterator[LocalSystem]:
    """Queues emptied (as if workers had drained them) and S3 up, before and after."""
    broker = redis.Redis.from_url(small_system.stack.broker_url)
    broker.delete("thumbnails", "hashing", "dedupe")
    yield small_system
    if not small_system.stack.s3.is_running():
        small_system.stack.s3.start()
    broker.delete("thumbnails", "hashing", "dedupe")


@pytest.fixture
def small_tenant(quiet: LocalSystem) -> Tenant:
    return Tenant(quiet.api_url, new_tenant(quiet, "capacity")["api_key"])


def test_the_library_waits_out_a_real_503_with_retry_after(
    quiet: LocalSystem, small_tenant: Tenant
) -> None:
    notices: list[RetryNotice] = []
    retrying = threading.Event()

    def on_retry(notice: RetryNotice) -> None:
        notices.append(notice)
        retrying.set()

    quiet.stack.s3.stop()
    data = encode(photo_like(200, 150, seed=1), "JPEG")
    with (
        Client(small_tenant.url, small_tenant.api_key, on_retry=on_retry) as client,
        ThreadPoolExecutor(1) as uploader,
    ):
        started = time.monotonic()
        upload = uploader.submit(client.upload, data)
        assert retrying.wait(60), "the client did not retry"
        # Storage comes back while the client waits. (Started from this thread: the
        # servers' children live as long as the thread that starts them.)
        quiet.stack.s3.start()
        accepted = upload.result(timeout=120)
        waited = time.monotonic() - started

    first = notices[0]
    assert (first.status, first.code) == (503, "storage-unavailable")
    assert first.delay_s >= 5  # the API's Retry-After: 5
    assert waited >= 5
    assert accepted.created and accepted.sha256 == sha256_bytes(data)
    assert small_tenant.image_count() == 1


def test_over_capacity_is_retried_then_reported(
    quiet: LocalSystem, small_tenant: Tenant, cli: Cli, tmp_path: Path
) -> None:
    # No workers: the jobs stay queued.
    with Client(small_tenant.url, small_tenant.api_key) as client:
        for seed in range(BREAKING_DEPTH + 1):
            assert client.upload(encode(photo_like(64, 48, seed=10 + seed), "JPEG")).created
    with small_tenant.http() as http:
        refused = wait_for(
            lambda: (
                (
                    r := http.post("/v1/images", content=encode(photo_like(64, 48, seed=9), "JPEG"))
                ).status_code
                == 503
                and r
            ),
            timeout_s=30,
            what="the API to see its queue past the breaking depth",
        )
    assert refused.json()["code"] == "overloaded"
    assert refused.headers["retry-after"] == "30"
    write_photos(tmp_path / "photos", 2, seed=20)
    stored = small_tenant.image_count()
    busy = cli.with_env(
        IMGFLOW_URL=small_tenant.url,
        IMGFLOW_API_KEY=small_tenant.api_key,
        IMGFLOW_RETRIES="2",  # one retry, after the 30 s asked for
        IMGFLOW_MAX_RETRY_WAIT="40",
    )

    done = busy.run("upload", str(tmp_path / "photos"), "--json", "--concurrency", "1", timeout=120)

    assert done.returncode == 3, done.stderr
    assert "503 overloaded; retrying in 30" in done.stderr
    summary = summary_of(done)
    assert "over capacity" in summary["error"] and "retry after 30 s" in summary["error"]
    assert summary["uploaded"] == 0 and summary["not_attempted"] == 2
    assert small_tenant.image_count() == stored


def _big_png(seed: int) -> bytes:
    """About 11.5 MB: noise does not compress, so three 5 MiB parts."""
    rng = random.Random(seed)
    pixels = rng.randbytes(2000 * 1900 * 3)
    out = io.BytesIO()
    PilImage.frombytes("RGB", (2000, 1900), pixels).save(out, "PNG", compress_level=0)
    return out.getvalue()


class Interrupted(Exception):
    pass


def test_a_multipart_upload_resumes_with_the_parts_not_yet_stored(
    quiet: LocalSystem, small_tenant: Tenant, tmp_path: Path
) -> None:
    data = _big_png(1)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    store = MemoryResumeStore()
    sent = 0

    def stop_in_part_two(n: int) -> None:
        nonlocal sent
        sent += n
        if sent > PART + 1024 * 1024:
            raise Interrupted

    options = {"presigned_above": 1024 * 1024, "resume_store": store}
    with (
        Client(small_tenant.url, small_tenant.api_key, part_concurrency=1, **options) as client,
        pytest.raises(Interrupted),
    ):
        client.upload(path, on_progress=stop_in_part_two)
    pending = store.load(sha256_bytes(data))
    assert pending is not None and pending.parts_done == {1}
    assert len(pending.ticket["parts"]) == 3

    resent: list[int] = []
    with Client(small_tenant.url, small_tenant.api_key, part_concurrency=2, **options) as client:
        accepted = client.upload(path, on_progress=resent.append)
        original = client.original(accepted.id)

    assert sum(resent) == len(data) - PART  # parts 2 and 3 only, side by side
    assert accepted.created and original == data
    assert store.load(sha256_bytes(data)) is None
    assert small_tenant.image_count() == 1


def test_the_server_unreachable_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    write_photos(tmp_path / "photos", 1, seed=30)
    with httpx.Client() as probe:  # a port nobody listens on
        closed = f"http://127.0.0.1:{_closed_port(probe)}"

    done = cli.with_env(IMGFLOW_URL=closed, IMGFLOW_RETRIES="2").run(
        "upload", str(tmp_path / "photos")
    )

    assert done.returncode == 3
    assert "cannot reach" in done.stderr and closed in done.stderr


def _closed_port(_: httpx.Client) -> int:
    from imgflow_localstack.ports import free_port

    return free_port()

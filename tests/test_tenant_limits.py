"""Per-tenant limits through the real API (issue 30): rate, concurrency and quotas answer
as documented, set by the operator CLI, and the tenant sees them in GET /v1/usage. The
rate and the uploads in progress hold across API replicas: a second API process on the
same system shares them (through Valkey).

Each test makes its own tenant, so the limits it sets touch no other test."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from imgflow_contracts.settings import ENV_PREFIX
from imgflow_localstack.ports import free_port
from imgflow_localstack.processes import ServiceProcess
from imgflow_localstack.readiness import HttpOk
from imgflow_localstack.services import API, api_url
from imgflow_localstack.system import LocalSystem
from tests.support import admin_cli, bearer, encode, new_tenant, photo_like, slow_body, wait_for


def _limited(system: LocalSystem, *limits: str) -> dict[str, Any]:
    tenant = new_tenant(system, "limited")
    done = admin_cli(system, "limits", "set", tenant["tenant"], *limits)
    assert done.returncode == 0, done.stderr
    return tenant


def _client(system: LocalSystem, tenant: dict[str, Any], url: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=url or system.api_url, timeout=30, headers=bearer(tenant["api_key"])
    )


@pytest.fixture(scope="module")
def second_api(system: LocalSystem) -> Iterator[str]:
    """Another API process of the same system, on a port of its own: a second replica."""
    spec = next(s for s in system.specs if s.name == API)
    port = free_port()
    twin = dataclasses.replace(
        spec,
        name="api-replica",
        ready=HttpOk(f"{api_url(port)}/healthz"),
        extra_env={**spec.extra_env, f"{ENV_PREFIX}API_PORT": str(port)},
    )
    replica = ServiceProcess(twin, {**os.environ, **system.env}, system.logs_dir)
    replica.start()
    try:
        yield api_url(port)
    finally:
        replica.stop()


def _jpeg(seed: int) -> bytes:
    return encode(photo_like(64, 48, seed=seed), "JPEG")


def test_past_its_rate_a_tenant_gets_429_with_retry_after_and_ratelimit_fields(
    system: LocalSystem,
) -> None:
    tenant = _limited(system, "--upload-rate-per-s", "0.01", "--upload-burst", "2")
    with _client(system, tenant) as client:
        assert [client.post("/v1/images", content=_jpeg(s)).status_code for s in (1, 2)] == [
            201,
            201,
        ]
        refused = client.post("/v1/images", content=_jpeg(3))
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate-limited"
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["ratelimit-policy"] == '"uploads";q=2;w=200'
    assert refused.headers["ratelimit"].startswith('"uploads";r=0;t=')
    # Another tenant is not limited by this one's rate.
    with _client(system, new_tenant(system)) as other:
        assert other.post("/v1/images", content=_jpeg(3)).status_code == 201


def test_uploads_past_the_concurrency_limit_get_429(system: LocalSystem) -> None:
    tenant = _limited(system, "--upload-concurrency", "1")
    release = threading.Event()
    answers: list[int] = []
    with _client(system, tenant) as client:
        slow = threading.Thread(
            target=lambda: answers.append(
                client.post("/v1/images", content=slow_body(_jpeg(10), release)).status_code
            )
        )
        slow.start()
        try:
            wait_for(
                lambda: client.get("/v1/usage").json()["uploads_in_progress"] == 1,
                what="the first upload to be admitted and streaming",
            )
            refused = client.post("/v1/images", content=_jpeg(11))
        finally:
            release.set()
            slow.join()
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "too-many-uploads"
        assert refused.headers["retry-after"]
        assert answers == [201]
        # The slot is free again once the first upload is answered.
        assert client.post("/v1/images", content=_jpeg(12)).status_code == 201


def test_usage_shows_the_uploads_in_progress_of_a_tenant_without_a_limit(
    system: LocalSystem,
) -> None:
    # Only a limited tenant's uploads hold a slot in Valkey; an unlimited one's were shown
    # as 0 while they ran.
    release = threading.Event()
    answers: list[httpx.Response] = []
    tenant = new_tenant(system)
    with _client(system, tenant) as client, _client(system, tenant) as uploader:
        slow = threading.Thread(
            target=lambda: answers.append(
                uploader.post("/v1/images", content=slow_body(_jpeg(13), release))
            )
        )
        slow.start()
        try:
            wait_for(
                lambda: answers or client.get("/v1/usage").json()["uploads_in_progress"] == 1,
                what="the upload to be shown in progress",
            )
            assert not answers, answers[0].text  # answered before its body was sent
        finally:
            release.set()
            slow.join()
        assert answers[0].status_code == 201, answers[0].text
        assert client.get("/v1/usage").json()["uploads_in_progress"] == 0


def test_quotas_refuse_with_a_problem_type_and_usage_shows_them(system: LocalSystem) -> None:
    tenant = _limited(system, "--max-images", "1")
    with _client(system, tenant) as client:
        first = client.post("/v1/images", content=_jpeg(20))
        assert first.status_code == 201, first.text
        refused = client.post("/v1/images", content=_jpeg(21))
        assert refused.status_code == 403, refused.text
        problem = refused.json()
        assert (problem["code"], problem["quota"], problem["used"], problem["limit"]) == (
            "quota-exceeded",
            "images",
            1,
            1,
        )
        assert problem["type"].endswith("quota-exceeded")
        usage = client.get("/v1/usage").json()
    assert usage["tenant"] == tenant["tenant"]
    assert usage["images"] == 1
    assert usage["bytes"] == first.json()["byte_size"]
    assert usage["limits"]["max_images"] == 1
    assert usage["limits"]["weight"] == 1
    assert set(usage["queued_jobs"]) >= {"upload", "bulk"}


def test_a_bytes_quota_counts_the_incoming_upload(system: LocalSystem) -> None:
    body = _jpeg(30)
    tenant = _limited(system, "--max-bytes", str(len(body) - 1))
    with _client(system, tenant) as client:
        refused = client.post("/v1/images", content=body)
    assert refused.status_code == 403
    assert (refused.json()["code"], refused.json()["quota"]) == ("quota-exceeded", "bytes")


def test_the_cli_sets_shows_and_clears_limits(system: LocalSystem) -> None:
    tenant = _limited(system, "--weight", "5", "--max-images", "100")
    cleared = admin_cli(system, "limits", "set", tenant["tenant"], "--clear", "max_images")
    assert cleared.returncode == 0, cleared.stderr
    shown = admin_cli(system, "limits", "show", tenant["tenant"])
    assert '"weight": 5' in shown.stdout and '"max_images": null' in shown.stdout
    bad = admin_cli(system, "limits", "set", tenant["tenant"], "--weight", "0")
    assert bad.returncode == 2 and "error" in bad.stderr
    unknown = admin_cli(system, "limits", "show", "nobody-here")
    assert unknown.returncode == 2 and "no tenant" in unknown.stderr


def test_a_presigned_upload_meets_the_same_quota(system: LocalSystem) -> None:
    tenant = _limited(system, "--max-images", "0")
    body = _jpeg(40)
    with _client(system, tenant) as client, httpx.Client(timeout=60, trust_env=False) as s3:
        created = client.post(
            "/v1/uploads",
            json={
                "byte_size": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "content_type": "image/jpeg",
            },
        )
        assert created.status_code == 201, created.text
        ticket = created.json()
        assert s3.put(ticket["url"], content=body).status_code == 200
        refused = client.post(ticket["complete_url"])
    assert refused.status_code == 403, refused.text
    assert (refused.json()["code"], refused.json()["quota"]) == ("quota-exceeded", "images")


def test_the_rate_is_shared_by_the_api_replicas(system: LocalSystem, second_api: str) -> None:
    tenant = _limited(system, "--upload-rate-per-s", "0.01", "--upload-burst", "2")
    with _client(system, tenant) as first, _client(system, tenant, second_api) as second:
        assert first.post("/v1/images", content=_jpeg(20)).status_code == 201
        assert second.post("/v1/images", content=_jpeg(21)).status_code == 201
        # Counted per process, each replica would allow a burst of 2 of its own.
        refused = [c.post("/v1/images", content=_jpeg(22)) for c in (first, second)]
    assert [r.status_code for r in refused] == [429, 429], [r.text for r in refused]
    assert {r.json()["code"] for r in refused} == {"rate-limited"}
    assert refused[1].headers["ratelimit-policy"] == '"uploads";q=2;w=200'


def test_uploads_in_progress_are_counted_across_the_replicas(
    system: LocalSystem, second_api: str
) -> None:
    tenant = _limited(system, "--upload-concurrency", "1")
    release = threading.Event()
    answers: list[int] = []
    with _client(system, tenant) as first, _client(system, tenant, second_api) as second:
        slow = threading.Thread(
            target=lambda: answers.append(
                first.post("/v1/images", content=slow_body(_jpeg(30), release)).status_code
            )
        )
        slow.start()
        try:
            wait_for(
                lambda: second.get("/v1/usage").json()["uploads_in_progress"] == 1,
                what="the other replica to see the upload in progress",
            )
            refused = second.post("/v1/images", content=_jpeg(31))
        finally:
            release.set()
            slow.join()
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "too-many-uploads"
        assert answers == [201]
        assert second.get("/v1/usage").json()["uploads_in_progress"] == 0
        assert second.post("/v1/images", content=_jpeg(32)).status_code == 201

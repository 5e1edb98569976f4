"""Tenants, API keys and Idempotency-Key against the real stack: every read is scoped to
the caller's tenant, and a retried upload never makes a second image."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.support import admin_cli, encode, new_tenant, photo_like, query, wait_for


@pytest.fixture(scope="module")
def other(system: LocalSystem) -> Iterator[httpx.Client]:
    """A client of a second tenant, made with the operator CLI."""
    issued = new_tenant(system)
    headers = {"Authorization": f"Bearer {issued['api_key']}"}
    with httpx.Client(base_url=system.api_url, timeout=30, headers=headers) as client:
        yield client


def _jpeg(seed: int) -> bytes:
    return encode(photo_like(320, 240, seed=seed), "JPEG", quality=85)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer imgf_not-a-key-of-anyone-at-all"}, {"Authorization": "Basic x"}],
    ids=["none", "unknown", "not-bearer"],
)
def test_requests_without_a_valid_key_are_401_problems(
    system: LocalSystem, headers: dict[str, str], store: ObjectStore
) -> None:
    with httpx.Client(base_url=system.api_url, timeout=30, headers=headers) as client:
        for response in (
            client.post("/v1/images", content=_jpeg(901)),
            client.get(f"/v1/images/{uuid.uuid4()}"),
        ):
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.json()["code"] == "unauthorized"


def test_another_tenants_image_is_not_found(api: httpx.Client, other: httpx.Client) -> None:
    mine = api.post("/v1/images", content=_jpeg(902)).json()["id"]
    theirs = other.post("/v1/images", content=_jpeg(903)).json()["id"]

    for client, foreign in ((api, theirs), (other, mine)):
        for path in (f"/v1/images/{foreign}", f"/v1/images/{foreign}/duplicates"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["code"] == "image-not-found"
    assert api.get(f"/v1/images/{mine}").status_code == 200
    assert other.get(f"/v1/images/{theirs}").status_code == 200


def test_the_same_bytes_in_two_tenants_are_two_private_images(
    api: httpx.Client, other: httpx.Client, database_url: str
) -> None:
    data = _jpeg(904)
    mine = api.post("/v1/images", content=data)
    theirs = other.post("/v1/images", content=data)

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    rows = query(
        database_url,
        "SELECT tenant_id, object_key FROM images WHERE sha256 = $1",
        mine.json()["sha256"],
    )
    assert len({r["tenant_id"] for r in rows}) == 2
    assert len({r["object_key"] for r in rows}) == 2

    def deduped(client: httpx.Client, image_id: str) -> dict[str, Any] | None:
        body = client.get(f"/v1/images/{image_id}").json()
        return body if body["stages"]["dedupe"]["status"] == "done" else None

    pairs = (
        (api, mine.json()["id"], theirs.json()["id"]),
        (other, theirs.json()["id"], mine.json()["id"]),
    )
    for client, image_id, foreign in pairs:
        image = wait_for(lambda c=client, i=image_id: deduped(c, i), what="dedupe", timeout_s=120)
        # the deduper searches within the tenant: the other tenant's copy is invisible
        # (other synthetic images of the same tenant may well be near duplicates)
        assert foreign not in {d["id"] for d in image["duplicates"]}
        assert image["exact_duplicate_of"] is None


def test_a_revoked_key_stops_working(system: LocalSystem) -> None:
    issued = new_tenant(system)
    revoked = admin_cli(system, "keys", "revoke", issued["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    headers = {"Authorization": f"Bearer {issued['api_key']}"}
    with httpx.Client(base_url=system.api_url, timeout=30, headers=headers) as client:
        assert client.get(f"/v1/images/{uuid.uuid4()}").status_code == 401
    listed = [json.loads(line) for line in admin_cli(system, "keys", "list").stdout.splitlines()]
    [record] = [k for k in listed if k["key_id"] == issued["key_id"]]
    assert record["revoked_at"] is not None and "api_key" not in record
    assert issued["api_key"].startswith(record["prefix"])


def test_a_retry_with_the_same_idempotency_key_returns_the_first_image(
    api: httpx.Client,
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    data = _jpeg(905)
    first = api.post("/v1/images", content=data, headers=key)
    again = api.post("/v1/images", content=data, headers=key)

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"


def test_an_idempotency_key_reused_for_other_bytes_is_refused(api: httpx.Client) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.post("/v1/images", content=_jpeg(906), headers=key)
    other_bytes = api.post("/v1/images", content=_jpeg(907), headers=key)

    assert first.status_code == 201
    assert other_bytes.status_code == 422
    assert other_bytes.json()["code"] == "idempotency-key-reused"
    assert other_bytes.json()["image_id"] == first.json()["id"]


@pytest.mark.parametrize("bad", ["", "x" * 256, "spaces are not allowed"])
def test_a_malformed_idempotency_key_is_a_400(api: httpx.Client, bad: str) -> None:
    response = api.post("/v1/images", content=_jpeg(908), headers={"Idempotency-Key": bad})
    assert response.status_code == 400
    assert response.json()["code"] == "bad-idempotency-key"


def test_concurrent_retries_make_one_image(
    api: httpx.Client, database_url: str, store: ObjectStore
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    data = _jpeg(909)
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda _: api.post("/v1/images", content=data, headers=key), range(8))
        )

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    [row] = query(
        database_url,
        "SELECT count(*) AS n, min(object_key) AS key FROM images WHERE sha256 = $1",
        responses[0].json()["sha256"],
    )
    assert row["n"] == 1
    assert store.get_bytes(row["key"]) == data


def test_concurrent_requests_with_one_key_and_other_bytes_make_one_image(
    api: httpx.Client, database_url: str
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    bodies = [_jpeg(920 + i) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        responses = list(
            pool.map(lambda body: api.post("/v1/images", content=body, headers=key), bodies)
        )

    assert sorted(r.status_code for r in responses) == [201] + [422] * 5
    created = [r for r in responses if r.status_code == 201]
    refused = [r.json() for r in responses if r.status_code == 422]
    assert all(p["code"] == "idempotency-key-reused" for p in refused)
    assert all(p["image_id"] == created[0].json()["id"] for p in refused)
    [row] = query(
        database_url,
        "SELECT count(*) AS n FROM images WHERE sha256 = ANY($1::text[])",
        [hashlib.sha256(body).hexdigest() for body in bodies],
    )
    assert row["n"] == 1


def test_concurrent_uploads_of_the_same_bytes_make_one_image(
    api: httpx.Client, database_url: str
) -> None:
    data = _jpeg(910)
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: api.post("/v1/images", content=data), range(8)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    [row] = query(
        database_url,
        "SELECT count(*) AS n FROM images WHERE sha256 = $1",
        responses[0].json()["sha256"],
    )
    assert row["n"] == 1

"""Presigned uploads against a whole running system: the bytes go straight to S3 through
presigned URLs (single PUT, or S3 multipart parts), and completing verifies them there.

Each test runs on every S3 server of the storage contract (tests/s3_targets.py): the
session's SeaweedFS, moto (a system of its own on it: tests/target_system.py), and your
own S3 or an S3 container when configured. Not moto over TLS: the presigned and multipart
operations themselves run over TLS in test_s3_presigned_and_tls.py.

A rejected completion is a 4xx problem that leaves nothing behind: no staged object, no
original, no image row (the upload row says `failed`).
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import sys
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from minio.error import S3Error
from PIL import Image

from imgflow_contracts.keys import original_key
from imgflow_contracts.settings import ENV_PREFIX
from imgflow_localstack.ports import HOST, free_port
from imgflow_localstack.processes import ServiceProcess
from imgflow_localstack.readiness import HttpOk
from imgflow_localstack.services import ServiceSpec, api_url
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.s3_targets import S3_TARGETS, S3Target
from tests.support import bearer, encode, new_tenant, photo_like, query, wait_for
from tests.target_system import TargetSystem, system_on

pytestmark = pytest.mark.parametrize(
    "s3_target", [t for t in S3_TARGETS if t != "moto-tls"], indirect=True
)

MIB = 1024 * 1024
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@pytest.fixture(scope="module")
def target(s3_target: S3Target, system: LocalSystem) -> Iterator[TargetSystem]:
    with system_on(s3_target, system) as running:
        yield running


# The session's fixtures of the same names, for the system on this module's S3 server.
@pytest.fixture(scope="module")
def api(target: TargetSystem) -> Iterator[httpx.Client]:
    headers = dict(target.auth_headers)
    with httpx.Client(base_url=target.api_url, timeout=30, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def store(target: TargetSystem) -> ObjectStore:
    return target.store


@pytest.fixture(scope="module")
def database_url(target: TargetSystem) -> str:
    return target.database_url


@pytest.fixture(scope="module")
def s3(target: TargetSystem) -> Iterator[httpx.Client]:
    """What a client uses for the presigned URLs: no API key, no proxies."""
    verify = target.target.settings.s3_ca_bundle or True
    with httpx.Client(timeout=60, trust_env=False, verify=verify) as client:
        yield client


@pytest.fixture(scope="module")
def other(target: TargetSystem) -> Iterator[httpx.Client]:
    headers = bearer(new_tenant(target)["api_key"])
    with httpx.Client(base_url=target.api_url, timeout=30, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def small_parts(target: TargetSystem) -> Iterator[httpx.Client]:
    """A second API process of the same system, configured for multipart from 5 MiB in
    5 MiB parts (S3's smallest), a fast sweeper, and URLs that name S3 otherwise (the
    public endpoint setting: `localhost` for a local server) than the API itself does."""
    port = free_port()
    spec = ServiceSpec(
        name=f"api-small-parts-{target.target.name}",
        argv=[sys.executable, "-m", "imgflow_upload_api"],
        ready=HttpOk(f"{api_url(port)}/healthz"),
        extra_env={
            f"{ENV_PREFIX}API_HOST": HOST,
            f"{ENV_PREFIX}API_PORT": str(port),
            f"{ENV_PREFIX}UPLOAD_MULTIPART_THRESHOLD_BYTES": str(5 * MIB),
            f"{ENV_PREFIX}UPLOAD_PART_SIZE_BYTES": str(5 * MIB),
            f"{ENV_PREFIX}SWEEPER_INTERVAL_S": "0.5",
            f"{ENV_PREFIX}S3_PUBLIC_ENDPOINT": target.public_s3_url,
        },
    )
    process = ServiceProcess(spec, {**os.environ, **target.env}, target.logs_dir)
    process.start()
    try:
        headers = dict(target.auth_headers)
        with httpx.Client(base_url=api_url(port), timeout=60, headers=headers) as c:
            yield c
    finally:
        process.stop()


def _jpeg(seed: int, size: tuple[int, int] = (480, 360)) -> bytes:
    return encode(photo_like(*size, seed=seed), "JPEG", quality=85)


def _big_png(seed: int) -> bytes:
    """~12.6 MB of incompressible pixels: three 5 MiB parts."""
    noise = random.Random(seed).randbytes(2100 * 2000 * 3)
    return encode(Image.frombytes("RGB", (2100, 2000), noise), "PNG", compress_level=1)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _create(client: httpx.Client, data: bytes, **overrides: Any) -> dict[str, Any]:
    body = {"byte_size": len(data), "sha256": _sha256(data), "content_type": "image/jpeg"}
    response = client.post("/v1/uploads", json={**body, **overrides})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/uploads/{response.json()['id']}"
    return response.json()  # type: ignore[no-any-return]


def _put(s3: httpx.Client, url: str, data: bytes, content_type: str | None = None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = s3.put(url, content=data, headers=headers)
    assert response.status_code == 200, response.text


def _complete(client: httpx.Client, ticket: dict[str, Any]) -> httpx.Response:
    return client.post(ticket["complete_url"])


def _row(database_url: str, upload_id: str) -> dict[str, Any]:
    [row] = query(database_url, "SELECT * FROM uploads WHERE id = $1", uuid.UUID(upload_id))
    return row


def _ready(client: httpx.Client, image_id: str) -> dict[str, Any] | None:
    body = client.get(f"/v1/images/{image_id}").json()
    assert body["status"] != "failed", body
    return body if body["status"] == "ready" else None


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def _assert_nothing_left(
    store: ObjectStore, database_url: str, ticket: dict[str, Any], actual: bytes
) -> None:
    row = _row(database_url, ticket["id"])
    assert row["state"] == "failed" and row["image_id"] is None
    assert store.stat(row["staging_key"]) is None
    assert not store.exists(original_key(row["tenant_id"], _sha256(actual)))
    assert not store.exists(original_key(row["tenant_id"], ticket["sha256"]))
    images = query(
        database_url,
        "SELECT id FROM images WHERE tenant_id = $1 AND sha256 = ANY($2::text[])",
        row["tenant_id"],
        [_sha256(actual), ticket["sha256"]],
    )
    assert images == []


def test_a_single_put_upload_becomes_a_ready_image(
    api: httpx.Client, s3: httpx.Client, store: ObjectStore, database_url: str, target: TargetSystem
) -> None:
    data = _jpeg(1001)
    ticket = _create(api, data)
    assert ticket["state"] == "pending" and ticket["parts"] == [] and ticket["part_size"] is None
    assert ticket["url"].startswith(f"{target.s3_url}/")  # no public endpoint: the S3 one

    _put(s3, ticket["url"], data, content_type="text/html")  # whatever the client says
    response = _complete(api, ticket)

    assert response.status_code == 201, response.text
    image = response.json()
    assert image["sha256"] == _sha256(data) and image["byte_size"] == len(data)
    assert image["content_type"] == "image/jpeg"
    assert response.headers["location"] == f"/v1/images/{image['id']}"
    row = _row(database_url, ticket["id"])
    assert row["state"] == "completed" and str(row["image_id"]) == image["id"]
    assert store.stat(row["staging_key"]) is None  # moved to its content-addressed key
    original = original_key(row["tenant_id"], _sha256(data))
    assert store.get_bytes(original) == data
    assert store.client.stat_object(store.bucket, original).content_type == "image/jpeg"
    status = api.get(f"/v1/uploads/{ticket['id']}").json()
    assert status["state"] == "completed" and status["image_id"] == image["id"]
    wait_for(lambda: _ready(api, image["id"]), timeout_s=120, what="the image to be ready")


def test_a_presigned_url_is_good_for_its_own_key_only(
    api: httpx.Client, s3: httpx.Client, store: ObjectStore, target: TargetSystem
) -> None:
    """Another key in a presigned URL breaks its signature: a server that checks signatures
    refuses the PUT. moto checks none (tests/s3_targets.py): there the PUT lands, and this
    asserts so, so that a moto that starts checking fails here and the table is updated."""
    ticket = _create(api, _jpeg(1010))
    url = urlsplit(ticket["url"])
    bucket, staged = url.path.lstrip("/").split("/", 1)
    forged_key = f"{staged.rsplit('/', 1)[0]}/forged-{uuid.uuid4().hex}"
    forged = urlunsplit(url._replace(path=f"/{bucket}/{forged_key}"))

    response = s3.put(forged, content=b"not what was signed for")

    if target.target.checks_signatures:
        assert response.status_code == 403, response.text
        assert "SignatureDoesNotMatch" in response.text
        assert not store.exists(forged_key)
    else:
        assert response.status_code == 200, response.text
        store.delete(forged_key)


def test_completing_twice_answers_with_the_same_image(
    api: httpx.Client, s3: httpx.Client, database_url: str
) -> None:
    data = _jpeg(1002)
    ticket = _create(api, data)
    _put(s3, ticket["url"], data)

    first, second = _complete(api, ticket), _complete(api, ticket)

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(query(database_url, "SELECT id FROM images WHERE sha256 = $1", _sha256(data))) == 1


def test_bytes_already_an_image_answer_with_that_image(
    api: httpx.Client, s3: httpx.Client, store: ObjectStore, database_url: str
) -> None:
    data = _jpeg(1009)
    direct = api.post("/v1/images", content=data)
    assert direct.status_code == 201
    ticket = _create(api, data)
    _put(s3, ticket["url"], data)

    answers = [_complete(api, ticket), _complete(api, ticket)]

    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == answer.json()["duplicate_of"] == direct.json()["id"]
    assert store.stat(_row(database_url, ticket["id"])["staging_key"]) is None


def test_concurrent_completions_make_one_image(
    api: httpx.Client, s3: httpx.Client, database_url: str
) -> None:
    data = _jpeg(1008, size=(1600, 1200))
    ticket = _create(api, data)
    _put(s3, ticket["url"], data)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _complete(api, ticket), range(4)))

    created = [a for a in answers if a.status_code == 201]
    others = [a for a in answers if a.status_code != 201]
    assert created, [a.text for a in answers]
    assert len({a.json()["id"] for a in created}) == 1
    for answer in others:  # lost the race for the lease while the first was verifying
        _assert_problem(answer, 409, "upload-in-progress")
    assert len(query(database_url, "SELECT id FROM images WHERE sha256 = $1", _sha256(data))) == 1


def test_a_multipart_upload_in_parts_becomes_a_ready_image(
    small_parts: httpx.Client,
    s3: httpx.Client,
    store: ObjectStore,
    database_url: str,
    target: TargetSystem,
) -> None:
    data = _big_png(7)
    ticket = _create(small_parts, data, content_type="image/png")
    parts = ticket["parts"]
    assert ticket["url"] is None and ticket["part_size"] == 5 * MIB
    assert [p["part_number"] for p in parts] == [1, 2, 3]
    assert sum(p["byte_size"] for p in parts) == len(data)
    assert all(p["url"].startswith(f"{target.public_s3_url}/") for p in parts)  # public

    def send(part: dict[str, Any]) -> None:
        _put(s3, part["url"], data[part["offset"] : part["offset"] + part["byte_size"]])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(send, parts[:2]))
    early = _complete(small_parts, ticket)
    assert _assert_problem(early, 409, "upload-incomplete")["missing_parts"] == [3]
    assert _row(database_url, ticket["id"])["state"] == "pending"  # still finishable

    send(parts[2])
    response = _complete(small_parts, ticket)

    assert response.status_code == 201, response.text
    image = response.json()
    assert image["sha256"] == _sha256(data) and image["content_type"] == "image/png"
    row = _row(database_url, ticket["id"])
    assert store.stat(row["staging_key"]) is None
    stored = store.stat(original_key(row["tenant_id"], _sha256(data)))
    assert stored is not None and stored.size == len(data)
    wait_for(lambda: _ready(small_parts, image["id"]), timeout_s=180, what="the image ready")


def test_completing_before_the_bytes_arrive_is_a_problem_and_the_upload_stays_open(
    api: httpx.Client, s3: httpx.Client, database_url: str
) -> None:
    data = _jpeg(1003)
    ticket = _create(api, data)

    _assert_problem(_complete(api, ticket), 409, "upload-incomplete")
    assert _row(database_url, ticket["id"])["state"] == "pending"

    _put(s3, ticket["url"], data)
    assert _complete(api, ticket).status_code == 201


def test_a_wrong_checksum_is_refused_and_leaves_nothing(
    api: httpx.Client, s3: httpx.Client, store: ObjectStore, database_url: str
) -> None:
    data = _jpeg(1004)
    ticket = _create(api, data, sha256=_sha256(b"other bytes"))
    _put(s3, ticket["url"], data)

    body = _assert_problem(_complete(api, ticket), 422, "checksum-mismatch")

    assert body["sha256"] == _sha256(data)
    _assert_nothing_left(store, database_url, ticket, data)
    again = _assert_problem(_complete(api, ticket), 409, "upload-failed")
    assert again["reason"] == "checksum-mismatch"


def test_bytes_of_another_size_are_refused_and_leave_nothing(
    api: httpx.Client, s3: httpx.Client, store: ObjectStore, database_url: str
) -> None:
    data = _jpeg(1005)
    ticket = _create(api, data, byte_size=len(data) + 10)
    _put(s3, ticket["url"], data)

    body = _assert_problem(_complete(api, ticket), 422, "size-mismatch")

    assert body["byte_size"] == len(data) and body["declared_byte_size"] == len(data) + 10
    _assert_nothing_left(store, database_url, ticket, data)


def _pixel_bomb() -> bytes:
    """A valid 1x1 PNG whose header claims 20000 x 20000 pixels."""
    png = encode(Image.new("L", (1, 1)), "PNG")
    ihdr = struct.pack(">II", 20_000, 20_000) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return png[:16] + ihdr + crc + png[33:]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"%PDF-1.7 definitely not an image " * 100, 415, "unsupported-format"),
        (_jpeg(1006)[:-300], 422, "truncated-image"),
        (
            b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"\x00\x00\x00\x00IEND\xaeB`\x82",
            422,
            "corrupt-image",
        ),
        (_pixel_bomb(), 422, "image-too-large"),
    ],
    ids=["not-an-image", "truncated", "corrupt", "pixel-bomb"],
)
def test_bad_bytes_are_refused_like_direct_uploads_and_leave_nothing(
    api: httpx.Client,
    s3: httpx.Client,
    store: ObjectStore,
    database_url: str,
    data: bytes,
    status: int,
    code: str,
) -> None:
    ticket = _create(api, data)
    _put(s3, ticket["url"], data)

    _assert_problem(_complete(api, ticket), status, code)

    _assert_nothing_left(store, database_url, ticket, data)


def test_another_tenants_upload_is_not_found(
    api: httpx.Client, other: httpx.Client, s3: httpx.Client, database_url: str
) -> None:
    data = _jpeg(1007)
    ticket = _create(api, data)
    _put(s3, ticket["url"], data)

    for response in (other.post(ticket["complete_url"]), other.get(f"/v1/uploads/{ticket['id']}")):
        _assert_problem(response, 404, "upload-not-found")
    assert _row(database_url, ticket["id"])["state"] == "pending"
    _assert_problem(api.post(f"/v1/uploads/{uuid.uuid4()}/complete"), 404, "upload-not-found")
    _assert_problem(api.post("/v1/uploads/not-a-uuid/complete"), 404, "upload-not-found")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"byte_size": 0, "sha256": "0" * 64}, 422, "invalid-request"),
        ({"byte_size": 10, "sha256": "not-hex"}, 422, "invalid-request"),
        ({"byte_size": 6 * 1024**3, "sha256": "0" * 64}, 413, "payload-too-large"),
    ],
    ids=["empty", "bad-sha256", "too-large"],
)
def test_a_bad_declaration_is_refused_before_anything_exists(
    api: httpx.Client, database_url: str, body: dict[str, Any], status: int, code: str
) -> None:
    before = query(database_url, "SELECT count(*) AS n FROM uploads")[0]["n"]
    _assert_problem(api.post("/v1/uploads", json=body), status, code)
    assert query(database_url, "SELECT count(*) AS n FROM uploads")[0]["n"] == before


def test_expired_uploads_are_cleaned_from_storage(
    small_parts: httpx.Client, s3: httpx.Client, store: ObjectStore, database_url: str
) -> None:
    data = _big_png(8)
    ticket = _create(small_parts, data, content_type="image/png")
    first = ticket["parts"][0]
    _put(s3, first["url"], data[: first["byte_size"]])
    row = _row(database_url, ticket["id"])
    assert len(store.list_parts(row["staging_key"], row["multipart_upload_id"])) == 1

    # As if the hour had passed.
    query(database_url, "UPDATE uploads SET expires_at = now() WHERE id = $1", row["id"])
    wait_for(
        lambda: _row(database_url, ticket["id"])["state"] == "expired",
        timeout_s=30,
        what="the expiry pass",
    )

    with pytest.raises(S3Error) as gone:
        store.list_parts(row["staging_key"], row["multipart_upload_id"])
    assert gone.value.code == "NoSuchUpload"
    assert store.stat(row["staging_key"]) is None
    _assert_problem(_complete(small_parts, ticket), 410, "upload-expired")

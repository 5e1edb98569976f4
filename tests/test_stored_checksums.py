"""The SHA-256 the API passes with each original: S3 checks it at PUT and reports it by
HEAD, and the hasher trusts S3's word for it; a swapped object is still caught, by that
path when the swap carried its own checksum (the error says "as S3 verified it"), else by
hashing the whole file.

The store's own behaviour runs against every S3 of tests/s3_targets.py; a server that
keeps the checksum unchecked (moto) makes the hasher refuse to start."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest
from minio.error import S3Error
from pydantic import SecretStr

from imgflow_contracts.settings import ENV_PREFIX
from imgflow_localstack.errors import ProcessExitedError
from imgflow_localstack.ports import free_port
from imgflow_localstack.processes import ServiceProcess
from imgflow_localstack.services import service_specs
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.s3_targets import S3Target
from tests.support import encode, every_stage_finished, photo_like, query, wait_for


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key() -> str:
    return f"test-checksums/{uuid.uuid4().hex}"


def test_a_wrong_sha256_is_refused_where_the_server_checks_and_a_right_one_reported(
    s3_target: S3Target,
) -> None:
    store = s3_target.store
    data = b"imgflow" * 5000
    key = _key()

    assert store.verifies_checksums() == s3_target.checks_checksums
    if s3_target.checks_checksums:
        with pytest.raises(S3Error) as refused:
            store.put_stream(key, io.BytesIO(data), len(data), "image/jpeg", _sha256(b"other"))
        assert refused.value.code == "BadDigest"
        assert not store.exists(key)
    else:  # stored unchecked: why the hasher refuses to trust such a server
        store.put_stream(key, io.BytesIO(data), len(data), "image/jpeg", _sha256(b"other"))
        assert store.checksum(key).sha256 == _sha256(b"other")
        store.delete(key)

    store.put_stream(key, io.BytesIO(data), len(data), "image/jpeg", _sha256(data))
    assert store.checksum(key).sha256 == _sha256(data)
    assert store.checksum(key).size == len(data)
    assert store.read_head(key, 10) == data[:10]
    assert store.read_head(key, 10 * len(data)) == data  # shorter than asked: all of it

    plain = _key()
    store.put_bytes(plain, data, "image/jpeg")
    assert store.checksum(plain).sha256 is None
    store.delete(key)
    store.delete(plain)


def test_an_object_above_the_multipart_threshold_keeps_its_whole_sha256(
    s3_target: S3Target,
) -> None:
    # minio-py would split 12 MB into parts; with a checksum it is one PUT.
    store = s3_target.store
    data = bytes(range(256)) * (12 * 4096)
    key = _key()
    store.put_stream(key, io.BytesIO(data), len(data), "image/jpeg", _sha256(data))
    assert store.checksum(key) == type(store.checksum(key))(len(data), _sha256(data))
    store.delete(key)


def test_a_wrong_secret_is_refused_where_the_server_checks_signatures(
    s3_target: S3Target,
) -> None:
    wrong = s3_target.settings.model_copy(update={"s3_secret_key": SecretStr("not-the-secret")})
    key = _key()
    if s3_target.checks_signatures:
        with pytest.raises(S3Error) as refused:
            ObjectStore.from_settings(wrong).put_bytes(key, b"x", "image/jpeg")
        assert refused.value.code in ("SignatureDoesNotMatch", "InvalidAccessKeyId")
        assert not s3_target.store.exists(key)
    else:  # moto: any key will do (it is a test server; nothing here relies on it)
        ObjectStore.from_settings(wrong).put_bytes(key, b"x", "image/jpeg")
        s3_target.store.delete(key)


def test_the_hasher_refuses_to_start_against_an_s3_that_stores_checksums_unchecked(
    s3_target: S3Target, system: LocalSystem
) -> None:
    """Where the server stores x-amz-checksum-sha256 unchecked, trusting it would let a
    corrupt original through: the hasher refuses at start-up, saying what to set; with
    IMGFLOW_HASHER_TRUST_STORED_CHECKSUM=false it starts. Where it checks, it starts."""
    s3 = s3_target.settings
    env = {
        **os.environ,
        **system.env,
        f"{ENV_PREFIX}S3_ENDPOINT": s3.s3_endpoint,
        f"{ENV_PREFIX}S3_BUCKET": s3.s3_bucket,
        f"{ENV_PREFIX}S3_SECURE": str(s3.s3_secure).lower(),
        f"{ENV_PREFIX}S3_ACCESS_KEY": s3.s3_access_key,
        f"{ENV_PREFIX}S3_SECRET_KEY": s3.s3_secret_key.get_secret_value(),
        **({f"{ENV_PREFIX}S3_CA_BUNDLE": s3.s3_ca_bundle} if s3.s3_ca_bundle else {}),
    }
    [spec] = [s for s in service_specs(free_port()) if s.name == "hasher"]
    # A name of its own, and a broker database no one sends to: this worker must take
    # none of the session's jobs.
    env[f"{ENV_PREFIX}BROKER_URL"] = system.settings().broker_url.rsplit("/", 1)[0] + "/15"
    argv = list(spec.argv)
    argv[argv.index("-n") + 1] = f"hasher-probe-{s3_target.name}@%h"
    spec = replace(spec, name=f"hasher-{s3_target.name}", argv=argv)
    logs = system.logs_dir / "hasher-probe"
    if s3_target.checks_checksums:
        started = ServiceProcess(spec, env, logs)
        started.start()
        started.stop()
        return
    with pytest.raises(ProcessExitedError) as refused:
        ServiceProcess(spec, env, logs).start()
    assert "stores x-amz-checksum-sha256 without checking it" in str(refused.value)
    assert "IMGFLOW_HASHER_TRUST_STORED_CHECKSUM=false" in str(refused.value)
    hashing_all = ServiceProcess(
        spec, {**env, f"{ENV_PREFIX}HASHER_TRUST_STORED_CHECKSUM": "false"}, logs
    )
    hashing_all.start()
    hashing_all.stop()


def _settled(api: httpx.Client, image_id: str, after: str | None = None) -> dict[str, Any]:
    """The image once every stage is settled (and hashing finished other than ``after``)."""

    def probe() -> dict[str, Any] | None:
        body = api.get(f"/v1/images/{image_id}").json()
        finished = body["stages"]["hashing"]["finished_at"]
        fresh = after is None or finished not in (None, after)
        return body if fresh and every_stage_finished(body) else None

    return wait_for(probe, what=f"image {image_id} to settle")


def _rehash(api: httpx.Client, image_id: str) -> dict[str, Any]:
    before = api.get(f"/v1/images/{image_id}").json()["stages"]["hashing"]["finished_at"]
    response = api.post(f"/v1/images/{image_id}/reprocess", json={"stages": ["hashing"]})
    assert response.status_code == 202, response.text
    return _settled(api, image_id, after=before)["stages"]["hashing"]


@pytest.mark.parametrize("swapped_with_checksum", [True, False], ids=["verified", "plain"])
def test_the_hasher_catches_a_swapped_original_with_or_without_a_stored_checksum(
    api: httpx.Client, store: ObjectStore, database_url: str, swapped_with_checksum: bool
) -> None:
    data = encode(photo_like(1600, 1200, seed=41 + swapped_with_checksum), "JPEG", quality=90)
    created = api.post("/v1/images", content=data, headers={"Content-Type": "image/jpeg"})
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    try:
        image = _settled(api, image_id)
        assert image["status"] == "ready", image
        assert (image["width"], image["height"], image["format"]) == (1600, 1200, "jpeg")
        [row] = query(database_url, "SELECT object_key FROM images WHERE id = $1::uuid", image_id)
        key = row["object_key"]
        # The API passed its digest: S3 holds it.
        assert store.checksum(key).sha256 == created.json()["sha256"]

        other = encode(photo_like(1600, 1200, seed=99), "JPEG", quality=90)
        checksum = _sha256(other) if swapped_with_checksum else None
        store.put_stream(key, io.BytesIO(other), len(other), "image/jpeg", checksum)

        hashing = _rehash(api, image_id)
        assert hashing["status"] == "failed", hashing
        assert "stored object is corrupt" in hashing["error"]
        assert _sha256(other) in hashing["error"]
        # With a stored checksum the header-only path caught it, else the whole-file one.
        assert ("as S3 verified it" in hashing["error"]) == swapped_with_checksum
    finally:
        api.delete(f"/v1/images/{image_id}")

"""The SHA-256 the API passes with each original: S3 checks it at PUT and reports it by
HEAD, and the hasher trusts S3's word for it; a swapped object is still caught, by that
path when the swap carried its own checksum (the error says "as S3 verified it"), else by
hashing the whole file."""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Any

import httpx
import pytest
from minio.error import S3Error

from imgflow_runtime.storage import ObjectStore
from tests.support import encode, every_stage_finished, photo_like, query, wait_for


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _key() -> str:
    return f"test-checksums/{uuid.uuid4().hex}"


def test_the_store_refuses_a_wrong_sha256_and_reports_a_right_one(store: ObjectStore) -> None:
    data = b"imgflow" * 5000
    key = _key()

    with pytest.raises(S3Error) as refused:
        store.put_stream(key, io.BytesIO(data), len(data), "image/jpeg", _sha256(b"other"))
    assert refused.value.code == "BadDigest"
    assert not store.exists(key)

    store.put_stream(key, io.BytesIO(data), len(data), "image/jpeg", _sha256(data))
    assert store.checksum(key).sha256 == _sha256(data)
    assert store.checksum(key).size == len(data)
    assert store.read_head(key, 10) == data[:10]
    assert store.read_head(key, 10 * len(data)) == data  # shorter than asked: all of it

    plain = _key()
    store.put_bytes(plain, data, "image/jpeg")
    assert store.checksum(plain).sha256 is None


def test_an_object_above_the_multipart_threshold_keeps_its_whole_sha256(
    store: ObjectStore,
) -> None:
    # minio-py would split 12 MB into parts; with a checksum it is one PUT.
    data = bytes(range(256)) * (12 * 4096)
    key = _key()
    store.put_stream(key, io.BytesIO(data), len(data), "image/jpeg", _sha256(data))
    assert store.checksum(key) == type(store.checksum(key))(len(data), _sha256(data))


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

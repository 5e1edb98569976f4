"""One upload through every hop: HTTP API, S3, PostgreSQL, Valkey and three real workers."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from imgflow_contracts.keys import original_key
from imgflow_runtime.storage import ObjectStore
from tests.support import encode, every_stage_finished, photo_like, query, wait_for

SIZES = (150, 300, 600)


def _wait_until_settled(api: httpx.Client, image_id: str, timeout_s: float = 60) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        body = api.get(f"/v1/images/{image_id}").json()
        return body if every_stage_finished(body) else None

    return wait_for(settled, timeout_s=timeout_s, what=f"image {image_id} to settle")


def _expected_size(width: int, height: int, size: int) -> tuple[int, int]:
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _upload_raw(api: httpx.Client, data: bytes, content_type: str) -> httpx.Response:
    return api.post("/v1/images", content=data, headers={"Content-Type": content_type})


def _upload_multipart(api: httpx.Client, data: bytes, content_type: str) -> httpx.Response:
    return api.post("/v1/images", files={"file": ("upload.bin", data, content_type)})


CASES = {
    "raw-jpeg": (_upload_raw, "JPEG", "image/jpeg", (2400, 1600), {"quality": 88}),
    "multipart-png": (_upload_multipart, "PNG", "image/png", (900, 1400), {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_upload_is_processed_by_every_stage(
    case: str, api: httpx.Client, store: ObjectStore, database_url: str
) -> None:
    send, pil_format, content_type, (width, height), options = CASES[case]
    data = encode(photo_like(width, height, seed=len(case)), pil_format, **options)

    response = send(api, data, content_type)

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/images/{created['id']}"
    assert created["status"] == "processing"
    assert created["content_type"] == content_type
    assert created["byte_size"] == len(data)

    image = _wait_until_settled(api, created["id"])
    assert image["status"] == "ready", image
    assert {name: s["status"] for name, s in image["stages"].items()} == {
        "thumbnails": "done",
        "hashing": "done",
        "dedupe": "done",
    }
    assert (image["width"], image["height"], image["format"]) == (
        width,
        height,
        pil_format.lower(),
    )
    assert image["duplicates_checked_at"] is not None

    assert [r["size"] for r in image["renditions"]] == list(SIZES)
    for rendition in image["renditions"]:
        stored = store.get_bytes(rendition["object_key"])
        assert len(stored) == rendition["byte_size"]
        with Image.open(io.BytesIO(stored)) as decoded:
            assert decoded.format == "WEBP"
            assert decoded.size == _expected_size(width, height, rendition["size"])
    [row] = query(
        database_url,
        "SELECT sha256, tenant_id, object_key FROM images WHERE id = $1::uuid",
        created["id"],
    )
    assert row["sha256"] == created["sha256"]
    # content-addressed: the tenant and the SHA-256 of the bytes name the original
    assert row["object_key"] == original_key(row["tenant_id"], created["sha256"])
    assert store.get_bytes(row["object_key"]) == data


def test_identical_bytes_are_stored_once_and_answer_with_the_first_image(
    api: httpx.Client, database_url: str
) -> None:
    data = encode(photo_like(640, 480, seed=7), "JPEG", quality=80)
    first = _upload_raw(api, data, "image/jpeg")
    assert first.status_code == 201 and first.json()["duplicate_of"] is None

    second = _upload_raw(api, data, "application/octet-stream")

    assert second.status_code == 200
    assert second.json()["id"] == second.json()["duplicate_of"] == first.json()["id"]
    assert second.headers["location"] == first.headers["location"]
    [row] = query(
        database_url, "SELECT count(*) AS n FROM images WHERE sha256 = $1", first.json()["sha256"]
    )
    assert row["n"] == 1


def test_pixels_that_do_not_decode_fail_the_stage_and_the_workers_go_on(
    api: httpx.Client,
) -> None:
    png = encode(photo_like(300, 200, seed=3), "PNG")
    idat = png.index(b"IDAT") + 4
    # Valid signature, header and IEND, so it passes the door; the pixel data is noise.
    broken = png[:idat] + bytes(b ^ 0x5A for b in png[idat : idat + 400]) + png[idat + 400 :]

    bad = _upload_raw(api, broken, "image/png")
    assert bad.status_code == 201, bad.text
    image = _wait_until_settled(api, bad.json()["id"])

    assert image["status"] == "failed"
    thumbnails = image["stages"]["thumbnails"]
    assert thumbnails["status"] == "failed"
    assert "cannot decode" in thumbnails["error"]
    assert thumbnails["attempts"] == 1  # a corrupt image is not retried
    assert image["renditions"] == []

    good = _upload_raw(api, encode(photo_like(320, 240, seed=4), "JPEG"), "image/jpeg")
    assert _wait_until_settled(api, good.json()["id"])["status"] == "ready"

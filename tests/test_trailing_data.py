"""Bytes after the end of an image (a motion photo's MP4, a newline after IEND) are
accepted, kept byte for byte in the original, and reported; a file cut short is not."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from tests.support import encode, every_stage_finished, photo_like, wait_for

# An MP4's first box and then some, as a motion photo appends its video after the JPEG.
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(range(256)) * 64


def _settled(api: httpx.Client, image_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = api.get(f"/v1/images/{image_id}").json()
        return body if every_stage_finished(body) else None

    return wait_for(probe, timeout_s=90, what=f"image {image_id} to settle")


CASES = {
    "motion-photo": (encode(photo_like(320, 240, seed=41), "JPEG", quality=85), MP4),
    "png-newline": (encode(photo_like(160, 120, seed=42), "PNG"), b"\n"),
    "gif-padding": (encode(photo_like(120, 90, seed=43), "GIF"), b"\x00" * 300),
}


@pytest.mark.parametrize("case", list(CASES))
def test_trailing_bytes_are_kept_and_reported(case: str, api: httpx.Client) -> None:
    image, trailer = CASES[case]
    data = image + trailer

    response = api.post("/v1/images", content=data)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["trailing_bytes"] == len(trailer)
    settled = _settled(api, created["id"])
    assert settled["status"] == "ready", settled["stages"]
    assert settled["trailing_bytes"] == len(trailer)
    assert api.get(f"/v1/images/{created['id']}/original").content == data


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_image_cut_short_is_still_refused(case: str, api: httpx.Client) -> None:
    image, _ = CASES[case]

    response = api.post("/v1/images", content=image[: len(image) * 3 // 4])

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "truncated-image"


def test_a_presigned_motion_photo_is_kept_whole_and_reported(api: httpx.Client) -> None:
    data = encode(photo_like(320, 240, seed=44), "JPEG", quality=85) + MP4
    declared = {"byte_size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    ticket = api.post("/v1/uploads", json={**declared, "content_type": "image/jpeg"}).json()
    with httpx.Client(timeout=60, trust_env=False) as s3:
        assert s3.put(ticket["url"], content=data).status_code == 200

    response = api.post(ticket["complete_url"])

    assert response.status_code == 201, response.text
    assert response.json()["trailing_bytes"] == len(MP4)
    settled = _settled(api, response.json()["id"])
    assert settled["status"] == "ready", settled["stages"]
    assert api.get(f"/v1/images/{settled['id']}/original").content == data

"""Duplicates end to end: real photographs through the API, S3, the deduper's CNN on ONNX
Runtime and pgvector, read back from GET /v1/images/{id}/duplicates and the image view."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import skimage.data
from PIL import Image, ImageEnhance

from imgflow_localstack.system import LocalSystem
from tests.support import encode, wait_for


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def _upload(api: httpx.Client, data: bytes) -> str:
    response = api.post("/v1/images", content=data, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _deduped(api: httpx.Client, image_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = api.get(f"/v1/images/{image_id}").json()
        return body if body["stages"]["dedupe"]["status"] in ("done", "failed") else None

    image = wait_for(done, timeout_s=120, what=f"the dedupe stage of {image_id}")
    assert image["stages"]["dedupe"]["status"] == "done", image["stages"]["dedupe"]
    return image


@pytest.fixture(scope="module")
def uploads(api: httpx.Client) -> dict[str, str]:
    cat = _photo("chelsea")
    # Brighter and re-encoded: a near duplicate the CNN alone finds (cosine ~0.99), so
    # this passes whether or not the hasher's pHash has arrived for the combined rule.
    edited = ImageEnhance.Brightness(cat).enhance(1.1)
    original_bytes = encode(cat, "JPEG", quality=90)
    ids = {
        "original": _upload(api, original_bytes),
        "edited": _upload(api, encode(edited, "JPEG", quality=70)),
        "other-photo": _upload(api, encode(_photo("coffee"), "JPEG", quality=90)),
    }
    for image_id in ids.values():
        _deduped(api, image_id)
    return ids


def _duplicates(api: httpx.Client, image_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/images/{image_id}/duplicates")
    assert response.status_code == 200, response.text
    return response.json()


def test_an_edited_copy_is_a_near_duplicate(api: httpx.Client, uploads: dict[str, str]) -> None:
    body = _duplicates(api, uploads["edited"])

    found = {d["id"]: d for d in body["duplicates"]}
    assert uploads["original"] in found
    assert found[uploads["original"]]["method"] in ("cnn", "cnn+phash", "phash")
    assert found[uploads["original"]]["score"] > 0.8
    assert uploads["other-photo"] not in found
    assert body["checked_at"] is not None


def test_the_same_bytes_again_are_the_same_image(
    api: httpx.Client, uploads: dict[str, str]
) -> None:
    # Exact duplicates never reach the deduper: the API stores identical bytes of one
    # tenant once and answers with the image they already are.
    again = api.post("/v1/images", content=encode(_photo("chelsea"), "JPEG", quality=90))
    assert again.status_code == 200, again.text
    assert again.json()["id"] == again.json()["duplicate_of"] == uploads["original"]
    assert again.headers["location"] == f"/v1/images/{uploads['original']}"


def test_the_group_holds_every_copy(api: httpx.Client, uploads: dict[str, str]) -> None:
    group = set(_duplicates(api, uploads["original"])["group"])
    assert {uploads["original"], uploads["edited"]} <= group
    assert uploads["other-photo"] not in group


def test_a_different_photo_has_no_duplicates(api: httpx.Client, uploads: dict[str, str]) -> None:
    body = _duplicates(api, uploads["other-photo"])
    assert body["duplicates"] == []
    assert body["group"] == [uploads["other-photo"]]


def test_the_image_view_lists_duplicates(api: httpx.Client, uploads: dict[str, str]) -> None:
    view = api.get(f"/v1/images/{uploads['edited']}").json()
    assert uploads["original"] in {d["id"] for d in view["duplicates"]}


@pytest.mark.parametrize("image_id", ["00000000-0000-0000-0000-00000000abcd", "not-a-uuid"])
def test_duplicates_of_an_unknown_image_are_a_404_problem(api: httpx.Client, image_id: str) -> None:
    response = api.get(f"/v1/images/{image_id}/duplicates")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "image-not-found"


def test_the_deduper_logged_its_execution_provider(
    system: LocalSystem, uploads: dict[str, str]
) -> None:
    log = system.service("deduper").log_path.read_text()
    assert "providers ['CPUExecutionProvider']" in log or "CUDAExecutionProvider" in log
    assert "intra-op threads" in log


def test_a_corrupt_image_fails_the_dedupe_stage_without_retries(api: httpx.Client) -> None:
    png = encode(_photo("coffee").reduce(4), "PNG")
    idat = png.index(b"IDAT") + 4
    broken = png[:idat] + bytes(b ^ 0x5A for b in png[idat : idat + 400]) + png[idat + 400 :]
    response = api.post("/v1/images", content=broken, headers={"Content-Type": "image/png"})
    assert response.status_code == 201, response.text

    def settled() -> dict[str, Any] | None:
        body = api.get(f"/v1/images/{response.json()['id']}").json()
        return body if body["stages"]["dedupe"]["status"] in ("done", "failed") else None

    dedupe = wait_for(settled, timeout_s=120, what="the dedupe stage")["stages"]["dedupe"]
    assert dedupe["status"] == "failed"
    assert "cannot decode" in dedupe["error"]
    assert dedupe["attempts"] == 1

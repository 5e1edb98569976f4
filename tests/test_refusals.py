"""Bad input gets an RFC 9457 problem and leaves nothing in S3 or PostgreSQL."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.support import encode, photo_like, query

JPEG = encode(photo_like(200, 150, seed=1), "JPEG")
PNG = encode(photo_like(120, 90, seed=2), "PNG")


def _huge_header_png() -> bytes:
    """A real PNG whose header claims 30000 x 30000 pixels: a decompression bomb."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    iend = b"\x00\x00\x00\x00IEND\xaeB`\x82"
    return b"\x89PNG\r\n\x1a\n" + chunk + iend


MULTIPART_NO_FILE = b'--b\r\nContent-Disposition: form-data; name="other"\r\n\r\nhello\r\n--b--\r\n'

REFUSALS = {
    "empty": (b"", {"Content-Type": "image/jpeg"}, 400, "empty-body"),
    "text": (b"hello, world", {"Content-Type": "image/jpeg"}, 415, "unsupported-format"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"/>', {}, 415, "unsupported-format"),
    "truncated-jpeg": (JPEG[: len(JPEG) // 2], {}, 422, "truncated-image"),
    "truncated-png": (PNG[:-30], {}, 422, "truncated-image"),
    "jpeg-header-only": (b"\xff\xd8\xff\xe0garbage\xff\xd9", {}, 422, "corrupt-image"),
    "bomb": (_huge_header_png(), {}, 422, "image-too-large"),
    "multipart-without-file": (
        MULTIPART_NO_FILE,
        {"Content-Type": "multipart/form-data; boundary=b"},
        400,
        "malformed-multipart",
    ),
    "multipart-cut": (
        MULTIPART_NO_FILE[:-8],
        {"Content-Type": "multipart/form-data; boundary=b"},
        400,
        "malformed-multipart",
    ),
}


@pytest.fixture
def nothing_left_behind(store: ObjectStore, database_url: str) -> Iterator[None]:
    # What exists, not how much: the session's system is shared, and an earlier test's
    # image may finish being deleted meanwhile (seen once: one image fewer). Nothing new
    # may appear.
    def snapshot() -> dict[str, set[object]]:
        objects = {
            o.object_name or ""
            for o in store.client.list_objects(store.bucket, prefix="originals/", recursive=True)
        }
        images = {r["id"] for r in query(database_url, "SELECT id FROM images")}
        jobs = {r["id"] for r in query(database_url, "SELECT id FROM outbox")}
        return {"objects": set(objects), "images": images, "jobs": jobs}

    before = snapshot()
    yield
    after = snapshot()
    assert {what: after[what] - before[what] for what in after} == {
        "objects": set(),
        "images": set(),
        "jobs": set(),
    }


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_uploads_get_a_problem_and_store_nothing(
    case: str, api: httpx.Client, nothing_left_behind: None
) -> None:
    body, headers, status, code = REFUSALS[case]

    response = api.post("/v1/images", content=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["type"].endswith(code)
    assert problem["title"] and problem["detail"]


def test_declared_length_over_the_limit_is_refused_before_reading(
    system: LocalSystem, nothing_left_behind: None
) -> None:
    # A raw socket, since an HTTP client would insist on sending the whole body first:
    # the answer must come while 50 MiB are still unsent.
    host, port = system.api_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/images HTTP/1.1\r\nHost: imgflow\r\nContent-Type: image/jpeg\r\n"
            + f"Authorization: Bearer {system.api_key}\r\n".encode()
            + f"Content-Length: {50 * 1024 * 1024 + 1}\r\n\r\n".encode()
            + JPEG[:1024]
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["code"] == "payload-too-large"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/images/00000000-0000-0000-0000-000000000000", 404, "image-not-found"),
        ("GET", "/v1/images/not-a-uuid", 404, "image-not-found"),
        ("DELETE", "/v1/images", 405, "method-not-allowed"),
        ("GET", "/v2/nothing", 404, "not-found"),
    ],
)
def test_wrong_addresses_are_problems_too(
    method: str, path: str, status: int, code: str, api: httpx.Client
) -> None:
    response = api.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code

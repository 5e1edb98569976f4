"""Fuzzing the upload API against the real stack: no input gets a 5xx, every refusal is a
problem document with a code, and nothing is left half-written in S3 or PostgreSQL.

Hypothesis mutates real JPEG/PNG/WebP/GIF/TIFF files (truncations, bit flips, spliced
garbage), forges magic bytes and huge dimension headers, and wraps bodies in hostile
multipart (schemathesis, every operation of openapi.json with every check, is
tests/contract/). Everything runs as a tenant of its own, so the leftover check sees only
what this module sent. Examples are derandomized (CI reruns the same inputs) and bounded.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.support import encode, new_tenant, photo_like, query
from tools.openapi import SPEC

PROBLEM = "application/problem+json"
# What the contract says an upload may answer.
UPLOAD_STATUSES = {
    int(s) for s in json.loads(SPEC.read_text())["paths"]["/v1/images"]["post"]["responses"]
}
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Small real files of every format Pillow writes: the seeds of the mutations.
_PICTURE = photo_like(48, 36, seed=7)
SEEDS = {
    "jpeg": encode(_PICTURE, "JPEG", quality=80),
    "png": encode(_PICTURE, "PNG"),
    "webp": encode(_PICTURE, "WEBP", quality=70),
    "gif": encode(_PICTURE.convert("P"), "GIF"),
    "tiff": encode(_PICTURE, "TIFF"),
}
MAGICS = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"GIF87a",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"II*\x00",
    b"MM\x00*",
    b"\x00\x00\x00\x18ftypheic",
    b"\x00\x00\x00\x18ftypavif",
]
PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


# -- bodies ------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real file, truncated, bit-flipped, or with garbage spliced in."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "splice", "overwrite-head"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:  # headers are where parsers are weakest
            head = draw(st.binary(min_size=1, max_size=32))
            data[8 : 8 + len(head)] = head
    return bytes(data)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bomb(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _huge_headers(fmt: str, width: int, height: int, tail: bytes) -> bytes:
    """A header of ``fmt`` that claims width x height, followed by ``tail``."""
    w16, h16 = min(width, 0xFFFF), min(height, 0xFFFF)
    if fmt == "png":
        return png_bomb(width, height)
    if fmt == "gif":
        screen = struct.pack("<HHBBB", w16, h16, 0, 0, 0)
        image = b"," + struct.pack("<HHHHB", 0, 0, w16, h16, 0) + b"\x02\x02\x44\x01\x00"
        return b"GIF89a" + screen + image + tail + b";"
    if fmt == "jpeg":
        sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h16, w16, 1) + b"\x01\x11\x00"
        return b"\xff\xd8" + sof + tail + b"\xff\xd9"
    if fmt == "webp":
        w24, h24 = min(width, 1 << 24) - 1, min(height, 1 << 24) - 1
        vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
        vp8x += w24.to_bytes(3, "little") + h24.to_bytes(3, "little")
        body = b"WEBP" + vp8x + tail
        return b"RIFF" + struct.pack("<I", len(body)) + body
    # TIFF: one IFD with ImageWidth and ImageLength as LONGs
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (262, 3, 1, 1)]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHII", *entry) for entry in entries) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd + tail


@st.composite
def huge_dimensions(draw: st.DrawFn) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(["png", "gif", "jpeg", "webp", "tiff"]))
    width = draw(st.integers(10_001, 2**31 - 1))
    height = draw(st.integers(10_001, 2**31 - 1))
    return fmt, _huge_headers(fmt, width, height, draw(st.binary(max_size=64)))


magic_and_garbage = st.builds(
    lambda magic, rest: magic + rest, st.sampled_from(MAGICS), st.binary(max_size=512)
)
any_body = st.one_of(st.binary(max_size=2048), mutated(), magic_and_garbage)


@st.composite
def multipart(draw: st.DrawFn) -> tuple[str, bytes]:
    """A Content-Type and a multipart body with hostile boundaries, headers and parts."""
    boundary = draw(st.text(PRINTABLE, max_size=250))
    declared = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={boundary}",
                f'multipart/form-data; boundary="{boundary}"',
                f"multipart/form-data; boundary={boundary}; boundary=other",
                "multipart/form-data",
                f"Multipart/Form-Data;boundary={boundary};charset=utf-8",
            ]
        )
    )
    wire = boundary.encode()
    body = draw(st.binary(max_size=64))  # preamble
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["file", "other", "", 'fi"le', "file\\"]))
        headers = [f'Content-Disposition: form-data; name="{name}"; filename="x.jpg"']
        headers += draw(
            st.lists(
                st.builds("{}: {}".format, st.text(PRINTABLE, max_size=30), st.text(PRINTABLE)),
                max_size=3,
            )
        )
        content = draw(st.one_of(st.just(SEEDS["jpeg"]), any_body))
        body += b"--" + wire + b"\r\n" + "\r\n".join(headers).encode() + b"\r\n\r\n"
        body += content + b"\r\n"
    ending = draw(st.sampled_from([b"--" + wire + b"--\r\n", b"--" + wire, b"", b"--\r\n"]))
    return declared, body + ending


# -- the tenant and the checks -----------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_tenant(system: LocalSystem, database_url: str) -> dict[str, Any]:
    """``{"id", "api_key"}`` of a tenant made for this module with the operator CLI."""
    issued = new_tenant(system, "fuzz")
    (row,) = query(database_url, "SELECT id FROM tenants WHERE name = $1", issued["tenant"])
    return {"id": row["id"], "api_key": issued["api_key"]}


@pytest.fixture(scope="module")
def client(system: LocalSystem, fuzz_tenant: dict[str, Any]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {fuzz_tenant['api_key']}"}
    with httpx.Client(base_url=system.api_url, timeout=60, headers=headers) as http:
        yield http


def check_upload_answer(response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    assert status in UPLOAD_STATUSES, f"{status} is not in the contract: {response.text[:300]}"
    body = response.json()
    if status >= 400:
        assert response.headers["content-type"] == PROBLEM
        assert body["status"] == status
        assert isinstance(body.get("code"), str) and body["code"], body
    else:
        assert status in (200, 201) and body["id"], body
    return body


def assert_nothing_left_behind(
    store: ObjectStore, database_url: str, tenant: dict[str, Any]
) -> None:
    """Every original of the tenant belongs to an image row, and every row has its object."""
    tenant_id = tenant["id"]
    objects = {
        o.object_name
        for o in store.client.list_objects(
            store.bucket, prefix=f"originals/{tenant_id}/", recursive=True
        )
    }
    rows = query(
        database_url,
        "SELECT object_key, deleting_since IS NOT NULL AS deleting FROM images"
        " WHERE tenant_id = $1",
        tenant_id,
    )
    keys = {r["object_key"] for r in rows}
    assert objects - keys == set(), "objects without an image row"
    # An image being deleted (a DELETE cut short: its client timed out, say) may have lost
    # its objects already; it is hidden from every read, and the sweeper finishes it.
    live = {r["object_key"] for r in rows if not r["deleting"]}
    assert live - objects == set(), "image rows without their object"


# -- hypothesis on the upload body -------------------------------------------------------


def test_no_body_gets_a_5xx_or_leaves_anything_behind(
    client: httpx.Client, store: ObjectStore, database_url: str, fuzz_tenant: dict[str, Any]
) -> None:
    content_types = st.sampled_from(
        ["image/jpeg", "application/octet-stream", "text/plain", "multipart/form-data", ""]
    )
    keys = st.one_of(st.none(), st.text(PRINTABLE, max_size=300))

    @settings(FUZZ, max_examples=150)
    @given(body=any_body, content_type=content_types, key=keys)
    def upload(body: bytes, content_type: str, key: str | None) -> None:
        headers = {"Content-Type": content_type}
        if key is not None:
            headers["Idempotency-Key"] = key
        check_upload_answer(client.post("/v1/images", content=body, headers=headers))

    upload()
    assert_nothing_left_behind(store, database_url, fuzz_tenant)


def test_huge_dimension_headers_are_refused_before_decoding(
    client: httpx.Client, store: ObjectStore, database_url: str, fuzz_tenant: dict[str, Any]
) -> None:
    @settings(FUZZ, max_examples=40)
    @given(case=huge_dimensions())
    def upload(case: tuple[str, bytes]) -> None:
        fmt, body = case
        answer = check_upload_answer(client.post("/v1/images", content=body))
        assert answer["status"] in (415, 422), answer
        if fmt == "png":  # a well-formed header: the pixel count is what refuses it
            assert answer["code"] == "image-too-large", answer

    upload()
    assert_nothing_left_behind(store, database_url, fuzz_tenant)


def test_hostile_multipart_gets_a_problem_not_a_5xx(
    client: httpx.Client, store: ObjectStore, database_url: str, fuzz_tenant: dict[str, Any]
) -> None:
    @settings(FUZZ, max_examples=100)
    @given(case=multipart())
    def upload(case: tuple[str, bytes]) -> None:
        content_type, body = case
        headers = {"Content-Type": content_type}
        check_upload_answer(client.post("/v1/images", content=body, headers=headers))

    upload()
    assert_nothing_left_behind(store, database_url, fuzz_tenant)


def test_fuzzing_left_nothing_behind(
    store: ObjectStore, database_url: str, fuzz_tenant: dict[str, Any]
) -> None:
    assert_nothing_left_behind(store, database_url, fuzz_tenant)

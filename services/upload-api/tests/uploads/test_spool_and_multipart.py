import asyncio
import hashlib

import pytest

from imgflow_upload_api.uploads.multipart_body import MalformedMultipart, stream_file_field
from imgflow_upload_api.uploads.spool import BodyTooLarge, SpooledBody


def test_spool_hashes_counts_and_keeps_head():
    body = SpooledBody(max_bytes=10_000, memory_bytes=100)  # small, so it rolls to disk
    data = bytes(range(256)) * 20
    for i in range(0, len(data), 333):
        body.write(data[i : i + 333])
    assert body.size == len(data)
    assert body.sha256 == hashlib.sha256(data).hexdigest()
    assert body.head == data[:32]
    assert body.rewound().read() == data
    body.close()


def test_spool_says_whether_the_body_is_still_in_memory():
    body = SpooledBody(max_bytes=100, memory_bytes=10)
    body.write(b"x" * 10)
    assert body.in_memory
    body.write(b"x")
    assert not body.in_memory
    assert body.rewound().read() == b"x" * 11
    body.close()


def test_spool_refuses_past_the_limit():
    body = SpooledBody(max_bytes=10, memory_bytes=100)
    body.write(b"12345")
    with pytest.raises(BodyTooLarge):
        body.write(b"678901")


async def _chunks(data: bytes, size: int = 7):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _multipart(*parts: tuple[str, bytes], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, payload in parts:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="a.bin"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + payload
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def _collect(body: bytes, content_type: str = "multipart/form-data; boundary=XyZ"):
    received = bytearray()
    declared = asyncio.run(stream_file_field(content_type, _chunks(body), received.extend))
    return bytes(received), declared


def test_multipart_streams_only_the_file_field():
    payload = b"\x89PNG" + b"\r\n--Xy almost a boundary" * 50
    received, declared = _collect(_multipart(("note", b"hello"), ("file", payload)))
    assert received == payload
    assert declared == "image/png"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_multipart(("other", b"x")), "multipart/form-data; boundary=XyZ"),
        (_multipart(("file", b"a"), ("file", b"b")), "multipart/form-data; boundary=XyZ"),
        (_multipart(("file", b"abc"))[:-10], "multipart/form-data; boundary=XyZ"),
        (b"garbage without boundaries", "multipart/form-data; boundary=XyZ"),
        (_multipart(("file", b"abc")), "multipart/form-data"),
    ],
    ids=["no-file", "two-files", "cut", "garbage", "no-boundary"],
)
def test_malformed_multipart_is_refused(body, content_type):
    with pytest.raises(MalformedMultipart):
        _collect(body, content_type)

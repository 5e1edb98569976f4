"""The minio client signs a body with the SHA-256 the caller already has, and hashes it
itself otherwise, exactly as minio-py does (s3_client.py overrides a private method: these
tests fail, rather than production, when a minio upgrade changes it)."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable

import minio.api
import pytest
from minio import Minio
from minio.credentials import Credentials
from minio.error import S3Error

from imgflow_runtime.s3_client import PAYLOAD_SHA256, KnownDigestMinio
from imgflow_runtime.storage import ObjectStore

BODY = b"imgflow" * 10_000
DIGEST = hashlib.sha256(BODY).hexdigest()
CREDS = Credentials("access", "secret")


def _refuse_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """minio's hash functions fail the test on any non-empty body."""
    for name in ("sha256_hash", "md5sum_hash"):
        original = getattr(minio.api, name)

        def refuse(data: bytes | None, original: Callable[..., str] = original) -> str:
            if data:
                raise AssertionError("minio hashed a body whose digest it was given")
            return original(data)

        monkeypatch.setattr(minio.api, name, refuse)


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_a_given_digest_signs_the_body_without_hashing_it_again(
    monkeypatch: pytest.MonkeyPatch, secure: bool
) -> None:
    _refuse_hashing(monkeypatch)
    client = KnownDigestMinio("s3.example:9000", "access", "secret", secure=secure)

    headers, _ = client._build_headers("s3.example:9000", {PAYLOAD_SHA256: DIGEST}, BODY, CREDS)

    assert headers[PAYLOAD_SHA256] == DIGEST
    assert headers["Content-Length"] == str(len(BODY))
    assert "Content-MD5" not in headers  # over HTTPS minio would send the body's MD5
    assert headers["Host"] == "s3.example:9000"
    assert "x-amz-date" in headers


@pytest.mark.parametrize("secure", [False, True], ids=["http", "https"])
def test_without_a_digest_the_headers_are_minios_own(secure: bool) -> None:
    ours = KnownDigestMinio("s3.example:9000", "access", "secret", secure=secure)
    theirs = Minio("s3.example:9000", "access", "secret", secure=secure)

    built, _ = ours._build_headers("s3.example:9000", {}, BODY, CREDS)
    expected, _ = theirs._build_headers("s3.example:9000", {}, BODY, CREDS)

    built.pop("x-amz-date")
    expected.pop("x-amz-date")
    assert built == expected
    assert built[PAYLOAD_SHA256] == ("UNSIGNED-PAYLOAD" if secure else DIGEST)


def test_a_request_without_a_body_keeps_minios_headers() -> None:
    client = KnownDigestMinio("s3.example:9000", "access", "secret", secure=False)
    headers, _ = client._build_headers("s3.example:9000", {PAYLOAD_SHA256: DIGEST}, None, CREDS)
    assert headers[PAYLOAD_SHA256] == hashlib.sha256(b"").hexdigest()
    assert "Content-Length" not in headers


def test_the_store_sends_a_known_digest_unhashed_and_the_server_still_checks_it(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refuse_hashing(monkeypatch)
    key = f"test-s3-client/{uuid.uuid4().hex}"

    store.put_stream(key, io.BytesIO(BODY), len(BODY), "image/jpeg", DIGEST)
    assert store.checksum(key).sha256 == DIGEST

    wrong = f"test-s3-client/{uuid.uuid4().hex}"
    with pytest.raises(S3Error) as refused:
        store.put_stream(wrong, io.BytesIO(BODY), len(BODY), "image/jpeg", "0" * 64)
    assert refused.value.code == "BadDigest"
    monkeypatch.undo()
    assert not store.exists(wrong)
    assert store.get_bytes(key) == BODY

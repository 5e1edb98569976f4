"""The storage contract's presigned and multipart operations (what POST /v1/uploads hands
to clients) against every S3 of tests/s3_targets.py, and S3 over TLS: the clients trust
the CA named by IMGFLOW_S3_CA_BUNDLE, and refuse a certificate no trusted CA signed.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import ssl
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import aiohttp
import httpx
import pytest
import urllib3

from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.uploads.s3_writer import S3Writer
from tests.s3_targets import S3Target, throwaway_ca

MIB = 1024 * 1024
EXPIRES = timedelta(minutes=5)


def _key() -> str:
    return f"test-presigned/{uuid.uuid4().hex}"


def _client_for(target: S3Target) -> httpx.Client:
    """What a client of the presigned URLs uses: the same trust, no proxies."""
    bundle = target.settings.s3_ca_bundle
    verify = ssl.create_default_context(cafile=bundle) if bundle else True
    return httpx.Client(timeout=60, trust_env=False, verify=verify)


def _presigner(target: S3Target) -> ObjectStore:
    scheme = "https" if target.settings.s3_secure else "http"
    return ObjectStore.for_presigning(target.settings, f"{scheme}://{target.settings.s3_endpoint}")


def test_a_presigned_put_stores_the_bytes(s3_target: S3Target) -> None:
    store, key, data = s3_target.store, _key(), os.urandom(100_000)
    with _client_for(s3_target) as client:
        response = client.put(_presigner(s3_target).presign_put(key, EXPIRES), content=data)
    assert response.status_code == 200, response.text
    try:
        assert store.get_bytes(key) == data
    finally:
        store.delete(key)


def test_a_multipart_upload_in_presigned_parts_is_read_copied_and_aborted(
    s3_target: S3Target,
) -> None:
    store, presigner, key = s3_target.store, _presigner(s3_target), _key()
    parts = [os.urandom(5 * MIB), os.urandom(1000)]  # 5 MiB: S3's smallest part but the last
    upload_id = store.create_multipart(key)
    with _client_for(s3_target) as client:
        for number, part in enumerate(parts, start=1):
            url = presigner.presign_part(key, upload_id, number, EXPIRES)
            response = client.put(url, content=part)
            assert response.status_code == 200, response.text
    listed = store.list_parts(key, upload_id)
    assert [(p.number, p.size) for p in listed] == [(1, 5 * MIB), (2, 1000)]
    store.complete_multipart(key, upload_id, listed)
    copied = _key()
    try:
        stored = store.stat(key)
        assert stored is not None and stored.size == 5 * MIB + 1000
        assert stored.etag.endswith("-2")  # S3's multipart ETag: of the parts, and how many
        assert store.read_range(key, 5 * MIB - 3, 6) == parts[0][-3:] + parts[1][:3]
        store.copy(key, copied, "image/jpeg", etag=stored.etag)
        assert store.get_bytes(copied) == b"".join(parts)
    finally:
        store.delete(key)
        store.delete(copied)

    # An unfinished upload is dropped with its parts; dropping it again is fine.
    abandoned = _key()
    upload_id = store.create_multipart(abandoned)
    with _client_for(s3_target) as client:
        url = presigner.presign_part(abandoned, upload_id, 1, EXPIRES)
        assert client.put(url, content=b"part").status_code == 200
    store.abort_multipart(abandoned, upload_id)
    store.abort_multipart(abandoned, upload_id)
    assert store.stat(abandoned) is None


# -- TLS ---------------------------------------------------------------------------------


def _put_with_writer(target: S3Target, ca_bundle: str | None) -> None:
    settings = target.settings.model_copy(update={"s3_ca_bundle": ca_bundle})
    data = b"tls" * 100

    async def run() -> None:
        writer = S3Writer.from_settings(settings)
        try:
            digest = hashlib.sha256(data).hexdigest()
            await writer.put(_key(), io.BytesIO(data), len(data), "image/jpeg", digest)
        finally:
            await writer.close()

    asyncio.run(run())


@pytest.mark.parametrize("s3_target", ["moto-tls"], indirect=True)
@pytest.mark.parametrize("trust", ["system", "another-ca"])
def test_a_certificate_no_trusted_ca_signed_is_refused(s3_target: S3Target, trust: str) -> None:
    """The server's certificate is signed by this run's CA: a client trusting only the
    system's CAs, or another private CA, refuses it (minio and the API's aiohttp path)."""
    assert s3_target.settings.s3_secure and s3_target.settings.s3_ca_bundle
    with tempfile.TemporaryDirectory() as folder:
        bundle = None if trust == "system" else str(throwaway_ca(Path(folder)).ca)
        untrusting = s3_target.settings.model_copy(update={"s3_ca_bundle": bundle})
        with pytest.raises(urllib3.exceptions.MaxRetryError) as refused:
            ObjectStore.from_settings(untrusting).put_bytes(_key(), b"x", "image/jpeg")
        assert isinstance(refused.value.reason, urllib3.exceptions.SSLError)
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value.reason)
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as aio_refused:
            _put_with_writer(s3_target, bundle)
        assert isinstance(aio_refused.value.certificate_error, ssl.SSLCertVerificationError)

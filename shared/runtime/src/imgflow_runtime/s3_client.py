"""The ``minio`` client, taught to sign with a payload digest the caller already has.

minio-py hashes every request body it sends: SHA-256 for SigV4's payload hash over HTTP,
MD5 (Content-MD5) over HTTPS. The API has the upload's SHA-256 from receiving it, and
sends it as ``x-amz-checksum-sha256`` besides, so hashing the same 4 MB again is pure
cost: ~2 ms of CPU per 12 MP photo over HTTP, more with MD5 over HTTPS (profiled in the
README's issue 16 section). A request that carries ``x-amz-content-sha256`` is signed with
that value instead, as SigV4 allows. MinIO and AWS check the body against it; every
server the project runs checks the ``x-amz-checksum-sha256`` sent with it (SeaweedFS
checks only that one), so a wrong digest is refused, not stored. Every other request is
built exactly as minio-py builds it.

This overrides one private method (``Minio._build_headers``, minio 7.2): there is no
public way to pass a known digest. ``tests/test_s3_client.py`` pins its behaviour, so a
minio upgrade that changes it fails there rather than in production.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from minio import Minio

PAYLOAD_SHA256 = "x-amz-content-sha256"


class KnownDigestMinio(Minio):
    """``Minio`` that signs a body with the ``x-amz-content-sha256`` it is given."""

    def _build_headers(
        self,
        host: str,
        headers: dict[str, Any] | None = None,
        body: bytes | None = None,
        creds: Any = None,
    ) -> tuple[dict[str, Any], datetime]:
        digest = (headers or {}).get(PAYLOAD_SHA256)
        if not body or not creds or not digest:
            return super()._build_headers(host, headers, body, creds)
        # minio's own headers for an empty body (date, host, agent, token), then the body's
        # length and the digest in place of the hashes it would have computed.
        md5_given = "Content-MD5" in headers  # type: ignore[operator]
        built, date = super()._build_headers(host, headers, None, creds)
        if not md5_given:
            built.pop("Content-MD5", None)  # over HTTPS: the empty body's MD5
        built["Content-Length"] = str(len(body))
        built[PAYLOAD_SHA256] = digest
        return built, date

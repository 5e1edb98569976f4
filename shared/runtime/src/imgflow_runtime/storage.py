"""Object storage over the S3 API through the ``minio`` client (MinIO, SeaweedFS, AWS).

The client is synchronous and thread-safe: async callers run it in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.helpers import MAX_PART_SIZE, MIN_PART_SIZE

from imgflow_contracts.settings import CommonSettings

# Multipart part size for uploads of unknown length; S3 needs at least 5 MiB.
_PART_SIZE = 16 * 1024 * 1024
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")
_CHECKSUM = "x-amz-checksum-sha256"


def checksum_headers(sha256: str) -> dict[str, str]:
    """The headers asking S3 to verify a PUT's bytes against ``sha256`` (hex) and keep it."""
    return {
        _CHECKSUM: base64.b64encode(bytes.fromhex(sha256)).decode(),
        # Some servers verify the value only when the algorithm is named too.
        "x-amz-sdk-checksum-algorithm": "SHA256",
    }


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class ObjectChecksum:
    """An object's size and the SHA-256 (hex) the server verified when it was PUT, if any."""

    size: int
    sha256: str | None


@dataclass(frozen=True)
class UploadedPart:
    """A part of an unfinished multipart upload, as S3 lists it."""

    number: int
    etag: str
    size: int


# Probe objects (verifies_checksums), deleted at once; refusals that say nothing of checksums.
_PROBE_PREFIX = ".imgflow-probe/"
_NOT_ABOUT_THE_CHECKSUM = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket"}
)


def tls_options(settings: CommonSettings) -> dict[str, str]:
    """urllib3's options for HTTPS to S3: the configured CA bundle, else the system's."""
    if settings.s3_ca_bundle is None:
        return {}
    return {"cert_reqs": "CERT_REQUIRED", "ca_certs": settings.s3_ca_bundle}


def ssl_context(settings: CommonSettings) -> ssl.SSLContext:
    """The same trust for clients that take an SSLContext (the API's aiohttp PUT path)."""
    return ssl.create_default_context(cafile=settings.s3_ca_bundle)


class ObjectStore:
    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(
        cls, settings: CommonSettings, *, probe_s: float | None = None
    ) -> ObjectStore:
        """``probe_s``: for a start-up probe, every request bounded by it and never retried
        (a stopped or frozen S3 must not hold a process's start)."""
        # Bounded timeouts and few quick retries: an outage surfaces in seconds as an error
        # that the task's own retry policy (with backoff, counted, dead-lettered at the end)
        # handles, instead of hiding behind urllib3's own retries inside one attempt.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(
                connect=probe_s or settings.s3_connect_timeout_s,
                read=probe_s or settings.s3_read_timeout_s,
            ),
            retries=False
            if probe_s
            else urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=(500, 502, 503, 504)),
            maxsize=settings.s3_max_connections,
            **tls_options(settings),
        )
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=http,
        )
        return cls(client, settings.s3_bucket)

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:  # another process made it first
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def verifies_checksums(self) -> bool:
        """Whether this S3 refuses an object whose ``x-amz-checksum-sha256`` is wrong, as
        AWS, MinIO and SeaweedFS do (moto stores it unchecked): PUT a probe that says so.
        Whoever trusts stored checksums asks this at start-up."""
        key = f"{_PROBE_PREFIX}{uuid.uuid4().hex}"
        data = b"imgflow checksum probe"
        wrong = hashlib.sha256(b"not the probe").hexdigest()
        try:
            self.put_stream(key, io.BytesIO(data), len(data), "application/octet-stream", wrong)
        except S3Error as exc:
            if exc.code in _NOT_ABOUT_THE_CHECKSUM:
                raise
            return True
        self.delete(key)
        return False

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        length: int,
        content_type: str,
        sha256: str | None = None,
    ) -> None:
        """``sha256`` (hex) of the bytes, when known: the server checks it (a mismatch is
        refused, S3Error BadDigest) and keeps it for ``checksum`` to report, so readers
        can trust the stored bytes without hashing them again. (The API's uploads take
        imgflow_upload_api.uploads.s3_writer instead, which also signs with the digest.)"""
        part_size = _PART_SIZE if length < 0 else 0
        metadata: dict[str, str] | None = None
        if sha256 is not None and 0 <= length <= MAX_PART_SIZE:
            # A whole-object checksum belongs to a single PUT (a multipart upload's is a
            # checksum of the parts' checksums): one part, up to S3's 5 GiB single PUT.
            part_size = max(length, MIN_PART_SIZE)
            metadata = checksum_headers(sha256)
        self.client.put_object(
            self.bucket,
            key,
            stream,
            length,
            content_type=content_type,
            metadata=metadata,
            part_size=part_size,
        )

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.put_stream(key, io.BytesIO(data), len(data), content_type)

    def get_bytes(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def get_bytes_if_exists(self, key: str) -> bytes | None:
        """None for a missing object; any other failure raises (a retry may succeed)."""
        try:
            return self.get_bytes(key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise

    def checksum(self, key: str) -> ObjectChecksum:
        """The object's size and stored SHA-256 (HEAD with checksum mode); ``sha256`` is None
        when the object was stored without one (or the server does not report it). A
        missing object raises S3Error NoSuchKey."""
        stat = self.client.stat_object(
            self.bucket, key, extra_headers={"x-amz-checksum-mode": "ENABLED"}
        )
        found = next((v for k, v in stat.metadata.items() if k.lower() == _CHECKSUM), None)
        return ObjectChecksum(int(stat.size or 0), _hex_digest(found))

    def read_head(self, key: str, length: int) -> bytes:
        """The first ``length`` bytes (all of them when the object is shorter)."""
        return self.read_range(key, 0, length)

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, key)

    def delete_prefix(self, prefix: str) -> None:
        objects = (
            DeleteObject(o.object_name)
            for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            if o.object_name
        )
        for error in self.client.remove_objects(self.bucket, objects):
            raise RuntimeError(f"could not delete {error.name}: {error.message}")

    # Presigned and multipart uploads (POST /v1/uploads): the client sends the bytes to S3.

    @classmethod
    def for_presigning(cls, settings: CommonSettings, endpoint: str) -> ObjectStore:
        """A store whose URLs name ``endpoint`` (host:port, or a URL with its scheme).

        A presigned URL is signed for its host, so clients must be given the host they
        reach S3 by, which need not be the one this process uses. Presigning is local
        (HMAC with the region given), so this client never connects anywhere.
        """
        parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        secure = parts.scheme == "https" if parts.scheme else settings.s3_secure
        client = Minio(
            parts.netloc,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=secure,
            region=settings.s3_region,
        )
        return cls(client, settings.s3_bucket)

    def presign_put(self, key: str, expires: timedelta) -> str:
        return self.client.presigned_put_object(self.bucket, key, expires=expires)

    def presign_part(self, key: str, upload_id: str, number: int, expires: timedelta) -> str:
        return self.client.get_presigned_url(
            "PUT",
            self.bucket,
            key,
            expires=expires,
            extra_query_params={"uploadId": upload_id, "partNumber": str(number)},
        )

    # minio-py keeps the multipart calls below internal (its put_object drives them);
    # they are the plain S3 operations, which presigned part uploads need one by one.
    def create_multipart(self, key: str) -> str:
        return self.client._create_multipart_upload(self.bucket, key, {})

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """Every part uploaded so far (S3 pages them by 1,000); raises S3Error
        NoSuchUpload when the upload was completed or aborted."""
        parts: list[UploadedPart] = []
        marker: str | None = None
        while True:
            page = self.client._list_parts(self.bucket, key, upload_id, part_number_marker=marker)
            parts.extend(UploadedPart(p.part_number, p.etag.strip('"'), p.size) for p in page.parts)
            if not page.is_truncated or not page.next_part_number_marker:
                return parts
            marker = str(page.next_part_number_marker)

    def complete_multipart(self, key: str, upload_id: str, parts: list[UploadedPart]) -> None:
        self.client._complete_multipart_upload(
            self.bucket, key, upload_id, [Part(p.number, p.etag) for p in parts]
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop an unfinished multipart upload and its parts; already gone is fine."""
        try:
            self.client._abort_multipart_upload(self.bucket, key, upload_id)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise

    def stat(self, key: str) -> StoredObject | None:
        """The object's size and ETag, or None when there is no such object."""
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        return StoredObject(key, int(stat.size or 0), (stat.etag or "").strip('"'))

    # ``etag`` pins the reads and the copy below to the bytes that were stat'ed: if the
    # object is replaced meanwhile, S3 answers 412 (S3Error PreconditionFailed).

    def iter_chunks(self, key: str, chunk_size: int, etag: str | None = None) -> Iterator[bytes]:
        """The object's bytes as they stream in, never all of them in memory."""
        response = self.client.get_object(self.bucket, key, request_headers=_if_match(etag))
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def read_range(self, key: str, offset: int, length: int, etag: str | None = None) -> bytes:
        response = self.client.get_object(
            self.bucket, key, offset=offset, length=length, request_headers=_if_match(etag)
        )
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def copy(self, source_key: str, key: str, content_type: str, etag: str | None = None) -> None:
        """Server-side copy (minio composes it from part copies above 5 GiB), with a
        Content-Type of our choosing rather than whatever the source was sent with."""
        source = CopySource(self.bucket, source_key, match_etag=etag)
        self.client.copy_object(
            self.bucket,
            key,
            source,
            metadata={"Content-Type": content_type},
            metadata_directive=REPLACE,
        )

    def open_stream(self, key: str) -> urllib3.BaseHTTPResponse:
        """The object's body as an unread HTTP response (headers: ETag, Content-Length,
        Content-Type). The caller reads it in chunks and must ``close()`` and
        ``release_conn()`` it."""
        return self.client.get_object(self.bucket, key)

    def presigned_get(self, key: str, expires_s: int) -> str:
        """A URL that GETs the object without credentials for ``expires_s`` seconds.

        Signed for this client's endpoint (the Host header is part of the signature): a
        store built for the endpoint clients reach. Computed locally when the region is
        configured (it always is here), so no request is made.
        """
        return self.client.presigned_get_object(
            self.bucket, key, expires=timedelta(seconds=expires_s)
        )

    def ping(self) -> None:
        """Raise unless the bucket is reachable with our credentials."""
        if not self.client.bucket_exists(self.bucket):
            raise RuntimeError(f"bucket {self.bucket!r} does not exist")


def _hex_digest(value: str | None) -> str | None:
    """A base64 SHA-256 header as hex; None for anything else (absent, a composite
    multipart checksum such as ``...=-3``, garbage)."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def _if_match(etag: str | None) -> dict[str, str] | None:
    return {"If-Match": f'"{etag}"'} if etag else None

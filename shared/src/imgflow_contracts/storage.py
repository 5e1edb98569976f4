"""Object storage over the S3 API through the ``minio`` client (MinIO, SeaweedFS, AWS).

The client is synchronous and thread-safe: async callers run it in a worker thread.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import BinaryIO

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from imgflow_contracts.settings import CommonSettings

# Multipart part size for uploads of unknown length; S3 needs at least 5 MiB.
_PART_SIZE = 16 * 1024 * 1024


class ObjectStore:
    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ObjectStore:
        # Bounded timeouts and few quick retries: an outage surfaces in seconds as an error
        # that the task's own retry policy (with backoff, counted, dead-lettered at the end)
        # handles, instead of hiding behind urllib3's own retries inside one attempt.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(
                connect=settings.s3_connect_timeout_s, read=settings.s3_read_timeout_s
            ),
            retries=urllib3.Retry(
                total=2, backoff_factor=0.1, status_forcelist=(500, 502, 503, 504)
            ),
            maxsize=settings.s3_max_connections,
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

    def put_stream(self, key: str, stream: BinaryIO, length: int, content_type: str) -> None:
        self.client.put_object(
            self.bucket,
            key,
            stream,
            length,
            content_type=content_type,
            part_size=_PART_SIZE if length < 0 else 0,
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

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
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

"""Verify a presigned upload's bytes where they lie in S3: the same checks as a direct
upload (format from magic bytes, truncation, header pixel limit) plus the declared size
and SHA-256.

Blocking (S3 reads and hashing): run it in a worker thread. The object is streamed in
chunks and its header read by ranged GETs, so memory use does not grow with its size;
every read is pinned to the ETag first seen, so a replacement mid-way is noticed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import urllib3
from minio.error import S3Error

from imgflow_runtime.storage import ObjectStore, StoredObject
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads.formats import HEAD_BYTES, ImageFormat
from imgflow_upload_api.uploads.presigned.object_reader import open_object
from imgflow_upload_api.uploads.presigned.plans import plan_parts
from imgflow_upload_api.uploads.presigned.repository import Upload
from imgflow_upload_api.uploads.validation import Inspection, check_format, inspect

_HASH_CHUNK = 1024 * 1024
_HEADER_BUFFER = 256 * 1024
# Errors of reading the object from S3, which are not the bytes' fault.
_READ_ERRORS = (S3Error, urllib3.exceptions.HTTPError)
# Problems that leave the upload pending: the client can still send the bytes (again).
RETRYABLE = frozenset({"upload-incomplete", "upload-changed"})


def assemble(store: ObjectStore, upload: Upload) -> StoredObject:
    """The staged object, after completing its multipart upload if it has one."""
    if upload.multipart_upload_id is not None:
        _complete_parts(store, upload, upload.multipart_upload_id)
    stored = store.stat(upload.staging_key)
    if stored is None:
        raise Problem(
            409,
            "upload-incomplete",
            "Upload incomplete",
            "no bytes have been uploaded to the presigned URL yet",
        )
    return stored


def _complete_parts(store: ObjectStore, upload: Upload, upload_id: str) -> None:
    assert upload.part_size is not None
    try:
        uploaded = {p.number: p for p in store.list_parts(upload.staging_key, upload_id)}
    except S3Error as exc:
        if exc.code != "NoSuchUpload":
            raise
        # Completed by an earlier attempt that stopped before recording it (the staged
        # object is there), or aborted (assemble then finds nothing).
        return
    planned = plan_parts(upload.byte_size, upload.part_size)
    missing = [p.number for p in planned if p.number not in uploaded]
    if missing:
        raise Problem(
            409,
            "upload-incomplete",
            "Upload incomplete",
            f"{len(missing)} of {len(planned)} parts have not been uploaded",
            missing_parts=missing[:100],
        )
    wrong = [
        n for n, part in uploaded.items() if n > len(planned) or part.size != planned[n - 1].size
    ]
    if wrong:
        raise Problem(
            422,
            "size-mismatch",
            "Size mismatch",
            "parts were uploaded that do not match the planned part sizes",
            parts=sorted(wrong)[:100],
        )
    store.complete_multipart(upload.staging_key, upload_id, [uploaded[p.number] for p in planned])


@dataclass(frozen=True)
class Verified:
    format: ImageFormat
    inspection: Inspection


def verify(store: ObjectStore, stored: StoredObject, upload: Upload, max_pixels: int) -> Verified:
    """Raise a Problem unless the object is the declared, complete, acceptable image."""
    if stored.size != upload.byte_size:
        raise Problem(
            422,
            "size-mismatch",
            "Size mismatch",
            f"{stored.size} bytes were uploaded; {upload.byte_size} were declared",
            declared_byte_size=upload.byte_size,
            byte_size=stored.size,
        )
    try:
        head = store.read_range(stored.key, 0, min(HEAD_BYTES, stored.size), stored.etag)
        fmt = check_format(stored.size, head)
        with open_object(store, stored, _HEADER_BUFFER) as reader:
            inspection = inspect(
                fmt, reader, stored.size, max_pixels, upload.sha256, passthrough=_READ_ERRORS
            )
        sha256 = _sha256(store, stored)
    except S3Error as exc:
        if exc.code == "PreconditionFailed":
            raise _changed() from exc
        raise
    if sha256 != upload.sha256:
        raise Problem(
            422,
            "checksum-mismatch",
            "Checksum mismatch",
            "the SHA-256 of the uploaded bytes is not the one declared",
            declared_sha256=upload.sha256,
            sha256=sha256,
        )
    return Verified(fmt, inspection)


def _sha256(store: ObjectStore, stored: StoredObject) -> str:
    digest = hashlib.sha256()
    counted = 0
    for chunk in store.iter_chunks(stored.key, _HASH_CHUNK, stored.etag):
        digest.update(chunk)  # releases the GIL for chunks this large
        counted += len(chunk)
    if counted != stored.size:
        raise _changed()
    return digest.hexdigest()


def _changed() -> Problem:
    return Problem(
        409,
        "upload-changed",
        "Upload changed",
        "the uploaded object was replaced while it was being verified; complete again",
    )


def copy_verified(store: ObjectStore, stored: StoredObject, key: str, fmt: ImageFormat) -> None:
    """Copy the verified bytes to their content-addressed key, only if still unchanged,
    typed by their sniffed format (never by the Content-Type the client PUT them with)."""
    try:
        store.copy(stored.key, key, fmt.content_type, etag=stored.etag)
    except S3Error as exc:
        if exc.code == "PreconditionFailed":
            raise _changed() from exc
        raise

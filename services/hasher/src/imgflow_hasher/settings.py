"""Hasher settings (``IMGFLOW_HASHER_*``)."""

from __future__ import annotations

from pydantic import Field

from imgflow_contracts.settings import WorkerSettings


class HasherSettings(WorkerSettings):
    # One switch for the whole deployment until tenants exist; then it becomes a
    # per-tenant choice read with the image, and this stays the default.
    hasher_keep_gps: bool = Field(
        default=False,
        description="Store the EXIF GPS position of uploads (off: never stored); per tenant later.",
    )
    hasher_trust_stored_checksum: bool = Field(
        default=True,
        description=(
            "Trust the SHA-256 the S3 server verified when the API stored the original "
            "(x-amz-checksum-sha256) and read only its header; off, or for an object stored "
            "without one, the whole original is read and hashed again."
        ),
    )
    hasher_header_bytes: int = Field(
        default=256 * 1024,
        ge=4096,
        description="Bytes of a JPEG original read for its format, size and EXIF.",
    )

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

"""Upload API settings (``IMGFLOW_API_*``, ``IMGFLOW_UPLOAD_*``, ``IMGFLOW_OUTBOX_*``)."""

from __future__ import annotations

from pydantic import Field

from imgflow_contracts.settings import LOCAL_API_PORT, CommonSettings


class ApiSettings(CommonSettings):
    api_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(
        default=LOCAL_API_PORT, ge=1, le=65535, description="Port the API listens on."
    )
    upload_max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, description="Largest accepted upload body, in bytes."
    )
    upload_max_pixels: int = Field(
        default=100_000_000, ge=1, description="Largest accepted width x height (bomb guard)."
    )
    upload_memory_spool_bytes: int = Field(
        default=8 * 1024 * 1024, ge=0, description="Uploads above this spool to a temp file."
    )
    outbox_relay_interval_s: float = Field(
        default=1.0, gt=0, description="How often unsent jobs are retried to the broker."
    )

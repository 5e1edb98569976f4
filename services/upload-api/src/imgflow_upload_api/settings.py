"""Upload API settings (``IMGFLOW_API_*``, ``IMGFLOW_UPLOAD_*``, ``IMGFLOW_OUTBOX_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

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
    queue_breaking_depth: int = Field(
        default=10_000,
        ge=1,
        description="Uploads get 503 while any queue or the outbox holds more jobs than this.",
    )
    queue_depth_refresh_s: float = Field(
        default=1.0, gt=0, description="How often the API reads the queue depths."
    )
    sweeper_interval_s: float = Field(
        default=10.0, gt=0, description="How often stuck stages are looked for."
    )
    sweeper_pending_after_s: float = Field(
        default=1800.0,
        gt=0,
        description="A stage queued this long without starting is re-enqueued.",
    )
    sweeper_running_after_s: float = Field(
        default=360.0,
        gt=0,
        description="A stage running this long is re-enqueued (keep above the task hard limit).",
    )
    sweeper_max_sweeps: int = Field(
        default=3, ge=0, description="Re-enqueues of one stage before it is dead-lettered."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of the admin API; unset turns it off."
    )
    outbox_relay_interval_s: float = Field(
        default=1.0, gt=0, description="How often unsent jobs are retried to the broker."
    )

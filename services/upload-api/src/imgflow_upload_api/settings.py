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
    bootstrap_api_key: SecretStr | None = Field(
        default=None,
        description="An API key made valid for the bootstrap tenant at start (development).",
    )
    bootstrap_tenant: str = Field(
        default="default", description="Tenant that IMGFLOW_BOOTSTRAP_API_KEY belongs to."
    )
    idempotency_ttl_s: float = Field(
        default=86_400.0,
        gt=0,
        description="How long an Idempotency-Key is remembered; a later reuse starts afresh.",
    )
    api_key_cache_s: float = Field(
        default=10.0,
        ge=0,
        description="How long a process trusts a resolved API key (a revocation's delay).",
    )
    outbox_relay_interval_s: float = Field(
        default=1.0, gt=0, description="How often unsent jobs are retried to the broker."
    )
    s3_public_endpoint: str | None = Field(
        default=None,
        description=(
            "S3 host:port (or URL) that clients reach, for presigned upload URLs only "
            "(they are signed for it); unset: IMGFLOW_S3_ENDPOINT."
        ),
    )
    upload_presigned_max_bytes: int = Field(
        default=5 * 1024**3,
        ge=1,
        description="Largest size a presigned upload (POST /v1/uploads) may declare, in bytes.",
    )
    upload_multipart_threshold_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1,
        description="Presigned uploads declared larger than this use S3 multipart part URLs.",
    )
    upload_part_size_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        le=5 * 1024**3,
        description="Part size of multipart presigned uploads (grown to stay <= 10,000 parts).",
    )
    upload_expiry_s: float = Field(
        default=3600.0,
        gt=0,
        description="Presigned upload URLs expire, and unfinished uploads are cleaned, after this.",
    )

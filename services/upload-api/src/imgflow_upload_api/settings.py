"""Upload API settings (``IMGFLOW_API_*``, ``IMGFLOW_UPLOAD_*``, ``IMGFLOW_OUTBOX_*``)."""

from __future__ import annotations

from typing import Literal

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
    trash_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Days a trashed image (a resolved duplicate) is kept before it is purged.",
    )
    # As long as the trash keeps what a resolve trashed: a client retrying within it is
    # answered the same; later, it reads the group afresh (404 or 409).
    resolution_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Days a resolve's answer is kept, so the same resolve answers the same.",
    )
    regroup_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often duplicate groups a trash or delete changed are regrouped.",
    )
    sweeper_interval_s: float = Field(
        default=10.0, gt=0, description="How often stuck stages are looked for."
    )
    sweeper_pending_after_s: float = Field(
        default=1800.0,
        gt=0,
        description=(
            "A stage queued this long without starting is re-enqueued, unless it is still"
            " in line behind its queue's oldest message."
        ),
    )
    sweeper_running_after_s: float = Field(
        default=360.0,
        gt=0,
        description="A stage running this long is re-enqueued (keep above the task hard limit).",
    )
    sweeper_max_sweeps: int = Field(
        default=3, ge=0, description="Re-enqueues of one stage before it is dead-lettered."
    )
    reprocess_batch_size: int = Field(
        default=200, ge=1, le=10_000, description="Images a bulk reprocess run resets per batch."
    )
    reprocess_interval_s: float = Field(
        default=1.0, gt=0, description="How often a replica drives a batch of a reprocess run."
    )
    reprocess_pause_depth: int | None = Field(
        default=None,
        ge=1,
        description="Reprocess runs pause while a queue or the outbox holds more jobs than this "
        "(unset: half of IMGFLOW_QUEUE_BREAKING_DEPTH, so uploads keep their headroom).",
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
        description="How long a process trusts a resolved API key; a revocation reaches "
        "every process at once (NOTIFY), this bounds one missed while PostgreSQL was away.",
    )
    outbox_relay_interval_s: float = Field(
        default=1.0, gt=0, description="How often unsent jobs are retried to the broker."
    )
    tenant_default_weight: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="A tenant's share of the workers when others wait too, unless set for it "
        "(`imgflow-admin limits set`).",
    )
    tenant_upload_rate_per_s: float | None = Field(
        default=None,
        gt=0,
        description="Uploads a tenant may start per second (across the API replicas: counted "
        "in Valkey), unless set for it (unset: no limit).",
    )
    tenant_upload_burst: int | None = Field(
        default=None,
        ge=1,
        description="Uploads a tenant may start at once above its rate (unset: one second's "
        "worth of the rate).",
    )
    tenant_upload_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Uploads of one tenant in progress at once (across the API replicas: "
        "counted in Valkey), unless set for it (unset: no limit).",
    )
    tenant_max_queued_jobs: int | None = Field(
        default=None,
        ge=1,
        description="Jobs a tenant may have waiting in the outbox before its uploads get 429, "
        "unless set for it (unset: no limit).",
    )
    tenant_upload_lease_s: float = Field(
        default=900.0,
        gt=0,
        description="How long an upload's slot of its tenant's concurrency limit is held in "
        "Valkey at most: an API process that dies holding slots frees them after this.",
    )
    tenant_light_work_first: bool = Field(
        default=False,
        description="While a tenant with no backlog has images in the express lane, hold "
        "back the uploads of tenants with a backlog in each API process "
        "(tenant_light_work_share of them still run); they wait, not refused. For an API "
        "that shares its host's cores with the workers (`make run` and Compose turn it on).",
    )
    tenant_light_work_share: int = Field(
        default=0,
        ge=0,
        description="How many uploads at a time a tenant with a backlog still runs in each API "
        "process while light work is in flight (tenant_light_work_first); 0: none.",
    )
    tenant_light_work_window_s: float = Field(
        default=2.0,
        gt=0,
        description="A light tenant's upload counts as light work in flight "
        "(tenant_light_work_first) from its first byte, its image until the API hears it is "
        "ready, failed or deleted, and at most this long after the relay's express send; a "
        "held-back upload waits at most this long.",
    )
    tenant_limits_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a process trusts a tenant's limits and usage as last read.",
    )
    outbox_express_queue_wait_s: float = Field(
        default=2.0,
        gt=0,
        description="Fair scheduling: a job waiting this long in an express queue (its "
        "express worker busy or not running) moves to the head of the stage's queue, and "
        "that express queue is left alone for 15 times as long.",
    )
    outbox_relay_poll_s: float = Field(
        default=0.05,
        gt=0,
        description="Fair scheduling: how often the relay tops the queues up while jobs wait.",
    )
    s3_public_endpoint: str | None = Field(
        default=None,
        description=(
            "S3 endpoint clients reach, for presigned upload and download URLs only (they "
            "are signed for it): `host:port`, or `https://host` to choose TLS; unset: "
            "IMGFLOW_S3_ENDPOINT."
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
    events_heartbeat_s: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between SSE heartbeat comments (keeps proxies from closing streams).",
    )
    events_queue_size: int = Field(
        default=1_000,
        ge=1,
        description="Events buffered per SSE client; a client that falls further behind is "
        "disconnected (it resumes with Last-Event-ID) instead of slowing the others.",
    )
    events_send_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="An SSE client that takes longer to accept one event is dropped.",
    )
    events_retention_s: float = Field(
        default=86_400.0,
        gt=0,
        description="How long events are kept for Last-Event-ID replay (about 11 rows per image).",
    )
    events_listen_retry_s: float = Field(
        default=1.0,
        gt=0,
        description="Wait before reconnecting the LISTEN connection after it is lost "
        "(doubles while it fails, up to 30 s).",
    )
    webhook_delivery_retention_s: float = Field(
        default=7 * 86_400.0,
        gt=0,
        description="How long delivered, failed and dropped webhook deliveries stay visible.",
    )
    image_delete_finish_after_s: float = Field(
        default=30.0,
        gt=0,
        description="A delete cut short by S3 or PostgreSQL (the image hidden, marked) is "
        "finished by the API's sweeper once marked this long.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook URLs whose host is a loopback, private or link-local address "
        "(checked at registration and again before each attempt). Off: tenants could make "
        "the API call internal services (SSRF); `make run` and the tests turn it on.",
    )
    api_downloads: Literal["stream", "redirect"] = Field(
        default="stream",
        description="GET .../original and .../thumbnails/{size}: `stream` the bytes through "
        "the API, or `redirect` (307) to a presigned S3 URL.",
    )
    api_download_url_ttl_s: int = Field(
        default=300,
        ge=1,
        le=7 * 24 * 3600,
        description="How long a presigned download URL works (redirect mode).",
    )
    api_original_max_age_s: int = Field(
        default=365 * 24 * 3600,
        ge=0,
        description="Cache-Control max-age of originals (content-addressed: immutable).",
    )
    api_rendition_max_age_s: int = Field(
        default=3600,
        ge=0,
        description="Cache-Control max-age of renditions (a reprocess may remake them).",
    )

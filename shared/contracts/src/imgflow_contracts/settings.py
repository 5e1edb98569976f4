"""Settings shared by every service, read from ``IMGFLOW_*`` environment variables.

Defaults point at the local stack that ``make run`` starts, so a developer needs no
configuration; production overrides them per deployable (see deploy/).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "IMGFLOW_"

# Ports of the local stack: deliberately not the servers' defaults, so a developer's
# own PostgreSQL, Redis or MinIO on this machine is never touched by mistake.
LOCAL_POSTGRES_PORT = 54329
LOCAL_VALKEY_PORT = 63790
LOCAL_S3_PORT = 58333
LOCAL_API_PORT = 8000


class CommonSettings(BaseSettings):
    """What every imgflow process needs: where PostgreSQL, the broker and S3 are."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str = Field(
        default=f"postgresql://imgflow@127.0.0.1:{LOCAL_POSTGRES_PORT}/imgflow",
        description="PostgreSQL DSN (asyncpg).",
    )
    database_pool_max: int = Field(default=10, ge=1, description="Connections per process.")
    broker_url: str = Field(
        default=f"redis://127.0.0.1:{LOCAL_VALKEY_PORT}/0",
        description="Redis/Valkey URL of the Celery broker.",
    )
    s3_endpoint: str = Field(
        default=f"127.0.0.1:{LOCAL_S3_PORT}", description="S3 host:port (MinIO, SeaweedFS, AWS)."
    )
    s3_access_key: str = Field(default="imgflow-local", description="S3 access key id.")
    s3_secret_key: SecretStr = Field(
        default=SecretStr("imgflow-local-secret"), description="S3 secret key."
    )
    s3_secure: bool = Field(default=False, description="Use HTTPS to reach S3.")
    s3_ca_bundle: str | None = Field(
        default=None,
        description=(
            "PEM file of the CA certificates to trust for HTTPS to S3 (a private CA); "
            "unset: the system's trust store."
        ),
    )
    s3_region: str = Field(default="us-east-1", description="S3 region name.")
    s3_bucket: str = Field(default="imgflow", description="Bucket for originals and renditions.")
    s3_connect_timeout_s: float = Field(default=5.0, gt=0, description="S3 connect timeout.")
    s3_read_timeout_s: float = Field(default=60.0, gt=0, description="S3 read timeout.")
    s3_max_connections: int = Field(
        default=16, ge=1, description="Pooled S3 connections per process."
    )
    outbox_scheduling: Literal["fair", "fifo"] = Field(
        default="fair",
        description="`fair`: the backlog waits in PostgreSQL and the relay publishes uploads "
        "before bulk work and tenants in weighted turns; `fifo`: every job at once, oldest "
        "first (the relay before issue 30).",
    )
    outbox_broker_target_depth: int = Field(
        default=2,
        ge=1,
        description="Fair scheduling: messages kept waiting in each broker queue (about its "
        "workers' total concurrency); the rest of the backlog waits in the outbox.",
    )
    outbox_express_max_waiting: int = Field(
        default=4,
        ge=0,
        description="Fair scheduling: a tenant with at most this many new-upload jobs waiting "
        "for any one queue is light: its jobs take the express lane (the express queue, "
        "else the head of the queue, up to the target depth beyond it); 0: off.",
    )
    outbox_express_queue_depth: int = Field(
        default=1,
        ge=0,
        description="Fair scheduling: express-lane jobs kept in each stage's express queue "
        "(`<queue>.express`), which only the stage's express worker consumes, so a light "
        "tenant's job does not wait for a running job; the rest go to the head of the "
        "stage's queue. Give the express workers as many processes (every deployable sets 3 "
        "for both). 0: no express queues (run no express workers).",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    trace_dir: str | None = Field(
        default=None,
        description="Write spans as JSON lines here (local debugging); OTLP uses OTEL_*.",
    )


class WorkerSettings(CommonSettings):
    """Celery worker safeguards (the decision record's figures are the defaults)."""

    task_soft_time_limit_s: int = Field(
        default=240, ge=1, description="A task past this many seconds is stopped and failed."
    )
    task_time_limit_s: int = Field(
        default=300, ge=1, description="Hard limit: the child process is killed and replaced."
    )
    # A recycle costs 0.4-0.8 CPU-s (fork, tracing, pools, new PostgreSQL sessions, the
    # deduper's model): ~19 ms per image at 100 (README, performance). The memory limit
    # below is what bounds a leak; this count is only the backstop for other resources.
    worker_max_tasks_per_child: int = Field(
        default=1000, ge=1, description="Child processes are recycled after this many tasks."
    )
    worker_max_memory_per_child_kb: int = Field(
        default=200_000, ge=10_000, description="A child past this resident memory is recycled."
    )
    result_expires_s: int = Field(
        default=3600, ge=60, description="Expiry of any stored task result, in seconds."
    )
    # Redis redelivers an unacked task after this long: it must exceed the hard time limit,
    # or a long task would run twice while the first run is still going.
    broker_visibility_timeout_s: int = Field(
        default=3600, ge=1, description="Unacked jobs are redelivered after this; > hard limit."
    )
    retry_base_s: float = Field(
        default=1.0, gt=0, description="First retry delay; each retry doubles it (with jitter)."
    )
    retry_cap_s: float = Field(default=120.0, gt=0, description="Longest delay between retries.")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the worker's /metrics; 0 turns it off."
    )
    worker_send_task_events: bool = Field(
        default=True,
        description="Send task events (received, started, succeeded...) for Flower.",
    )
    task_max_retries: int = Field(
        default=5, ge=0, description="Retries of a transient failure before a stage fails."
    )


@lru_cache
def common_settings() -> CommonSettings:
    return CommonSettings()


@lru_cache
def worker_settings() -> WorkerSettings:
    return WorkerSettings()

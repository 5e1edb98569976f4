"""The webhook sender's settings (IMGFLOW_WEBHOOK_*), from the environment."""

from __future__ import annotations

from pydantic import Field

from imgflow_contracts.settings import CommonSettings

DAY_S = 86_400.0


class SenderSettings(CommonSettings):
    webhook_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Time limit of one webhook delivery attempt (connect and answer).",
    )
    webhook_max_attempts: int = Field(
        default=12,
        ge=1,
        description="Attempts of one webhook delivery before it is marked failed.",
    )
    webhook_retry_base_s: float = Field(
        default=1.0,
        gt=0,
        description="Wait before the 2nd attempt; doubles each attempt (with jitter) up to "
        "the cap. The defaults spread 12 attempts over about half an hour.",
    )
    webhook_retry_cap_s: float = Field(
        default=1_800.0,
        gt=0,
        description="Longest wait between two webhook delivery attempts (a receiver's "
        "Retry-After included).",
    )
    webhook_dispatch_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often due webhook deliveries are looked for (new events wake it at once).",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook URLs whose host is a loopback, private or link-local address "
        "(checked at registration and again before each attempt). Off: tenants could make "
        "the API call internal services (SSRF); `make run` and the tests turn it on.",
    )
    webhook_max_in_flight: int = Field(
        default=200, ge=1, description="Delivery attempts in flight per sender process."
    )
    webhook_per_endpoint: int = Field(
        default=4,
        ge=1,
        description="Attempts in flight to one endpoint, all sender replicas together.",
    )
    webhook_per_host: int = Field(
        default=8,
        ge=1,
        description="Attempts in flight to one target host (all its endpoints), all sender "
        "replicas together.",
    )
    webhook_per_tenant: int = Field(
        default=16,
        ge=1,
        description="Attempts in flight for one tenant (all its endpoints), all sender "
        "replicas together.",
    )
    webhook_lease_margin_s: float = Field(
        default=30.0,
        gt=0,
        description="How long past an attempt's time limit its claim holds: a replica that "
        "died mid-attempt gives back its deliveries and concurrency slots after "
        "IMGFLOW_WEBHOOK_TIMEOUT_S plus this.",
    )
    webhook_pause_after_failures: int = Field(
        default=5,
        ge=1,
        description="Consecutive failed attempts after which an endpoint is paused (its "
        "deliveries wait; one probe at a growing interval; the first success resumes it).",
    )
    webhook_probe_base_s: float = Field(
        default=30.0, gt=0, description="First probe of a paused endpoint after this; doubles."
    )
    webhook_probe_cap_s: float = Field(
        default=3_600.0, gt=0, description="Longest wait between two probes of a paused endpoint."
    )
    webhook_disable_after_s: float = Field(
        default=3 * DAY_S,
        gt=0,
        description="An endpoint failing for this long is disabled (event webhook.disabled); "
        "a tenant re-enables it with POST /v1/webhooks/{id}/enable.",
    )
    webhook_disabled_backlog_max: int = Field(
        default=10_000,
        ge=0,
        description="Pending deliveries kept for a disabled endpoint (delivered in order if "
        "the tenant re-enables it): past this, the oldest are dropped (status dropped, "
        "counted in GET /v1/webhooks as backlog_dropped).",
    )
    webhook_unresolvable_grace_s: float = Field(
        default=3_600.0,
        ge=0,
        description="A host that has not resolved for this long fails its deliveries at once "
        "(before, it is retried like a connection error).",
    )
    webhook_gauge_refresh_s: float = Field(
        default=15.0,
        gt=0,
        description="How often the pending-delivery and endpoint-state gauges are read, and "
        "disabled endpoints' backlogs capped.",
    )
    webhook_sender_host: str = Field(
        default="0.0.0.0",
        description="Address of the sender's /healthz and /metrics.",
    )
    webhook_sender_port: int = Field(
        default=9104, ge=0, le=65535, description="Port of the sender's /healthz and /metrics."
    )

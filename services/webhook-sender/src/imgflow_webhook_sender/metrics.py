"""The sender's Prometheus metrics (its own registry, served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from imgflow_webhook_sender.breaker import STATES

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400)


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.attempts = Counter(
            "imgflow_webhook_attempts",
            "Webhook delivery attempts by outcome: delivered, retry, failed.",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "imgflow_webhook_delivery_latency_seconds",
            "From an event's delivery being queued to the receiver's 2xx.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pending = Gauge(
            "imgflow_webhook_deliveries_pending",
            "Pending webhook deliveries by the state of their endpoint (read every "
            "IMGFLOW_WEBHOOK_GAUGE_REFRESH_S).",
            ["endpoint_state"],
            registry=self.registry,
        )
        self.endpoints = Gauge(
            "imgflow_webhook_endpoints",
            "Webhook endpoints by circuit-breaker state: active, paused, disabled.",
            ["state"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "imgflow_webhook_attempts_in_flight",
            "Delivery attempts this process is waiting on.",
            registry=self.registry,
        )
        self.state_changes = Counter(
            "imgflow_webhook_state_changes",
            "Endpoint state changes made by this process, by the new state.",
            ["state"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "imgflow_webhook_deliveries_dropped",
            "Pending deliveries of disabled endpoints dropped unsent, the oldest first, past "
            "IMGFLOW_WEBHOOK_DISABLED_BACKLOG_MAX (by this process).",
            registry=self.registry,
        )
        self.passes = Counter(
            "imgflow_webhook_dispatch_passes",
            "Claim passes this process completed (what /healthz checks is recent).",
            registry=self.registry,
        )
        for state in STATES:
            self.pending.labels(state)
            self.endpoints.labels(state)
            self.state_changes.labels(state)
        for outcome in ("delivered", "retry", "failed"):
            self.attempts.labels(outcome)

    def set_gauges(self, pending: dict[str, int], endpoints: dict[str, int]) -> None:
        for state in STATES:
            self.pending.labels(state).set(pending.get(state, 0))
            self.endpoints.labels(state).set(endpoints.get(state, 0))

"""Prometheus metrics of the API. Gauges that read other servers are refreshed per scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "imgflow_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "imgflow_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.uploads = Counter(
            "imgflow_uploads",
            "Uploads by outcome: accepted, or the problem code.",
            ["outcome"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "imgflow_queue_depth",
            "Jobs waiting in each broker queue.",
            ["queue"],
            registry=self.registry,
        )
        self.oldest_waiting = Gauge(
            "imgflow_stage_oldest_waiting_seconds",
            "Age of the oldest stage not yet done or failed (queued or running), per stage.",
            ["stage"],
            registry=self.registry,
        )
        self.dead_letters_open = Gauge(
            "imgflow_dead_letters_open",
            "Jobs given up on and not replayed yet.",
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "imgflow_outbox_pending",
            "Accepted jobs not yet handed to the broker.",
            registry=self.registry,
        )
        self.outbox_relayed = Counter(
            "imgflow_outbox_relayed",
            "Jobs this process handed from the outbox to the broker.",
            registry=self.registry,
        )
        self.express_moved = Counter(
            "imgflow_express_jobs_moved",
            "Jobs that waited too long in an express queue (its worker busy or down) and "
            "moved to the head of the stage's queue, by the queue they moved to.",
            ["queue"],
            registry=self.registry,
        )
        self.uploads_yielded = Counter(
            "imgflow_uploads_yielded",
            "Uploads of a tenant with a backlog that waited while light tenants' work was "
            "in flight (IMGFLOW_TENANT_LIGHT_WORK_FIRST).",
            registry=self.registry,
        )
        self.backlog_jobs = Gauge(
            "imgflow_backlog_jobs",
            "Jobs waiting in the outbox for the fair relay, by kind of work (upload, bulk).",
            ["kind"],
            registry=self.registry,
        )
        self.backlog_oldest = Gauge(
            "imgflow_backlog_oldest_seconds",
            "Age of the oldest job waiting in the outbox, by kind of work.",
            ["kind"],
            registry=self.registry,
        )
        self.tenant_backlog = Gauge(
            "imgflow_tenant_backlog_jobs",
            "Jobs waiting in the outbox for the tenants holding the most (ten of them; the "
            'rest summed as tenant="other").',
            ["tenant"],
            registry=self.registry,
        )

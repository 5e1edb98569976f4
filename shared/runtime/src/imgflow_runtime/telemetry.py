"""OpenTelemetry bootstrap shared by every process, and trace context for the outbox.

Exporters come from configuration: the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` sends
spans to a collector; ``IMGFLOW_TRACE_DIR`` writes them as JSON lines, one file per
process, for local debugging and the end-to-end tests. With neither, tracing costs
nothing but context propagation, which always runs, so traces join up wherever a
collector is added.

One upload is one trace: the API stores the request's trace context with each outbox
row, and the relay publishes under it, so even a job sent minutes later by the sweeper
continues the upload's trace into the worker.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

log = logging.getLogger(__name__)

IMAGE_ID_ATTRIBUTE = "imgflow.image_id"
# How long a process that ends may spend sending its last spans.
FLUSH_TIMEOUT_MS = 10_000

_installed: TracerProvider | None = None


def setup_tracing(service_name: str, trace_dir: str | None = None) -> TracerProvider:
    """Install a tracer provider for this process (call after any fork)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("exporting traces over OTLP/HTTP")
    if trace_dir:
        path = Path(trace_dir) / f"{service_name}-{os.getpid()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        stream = path.open("a", buffering=1, encoding="utf-8")  # line-buffered
        exporter = ConsoleSpanExporter(
            out=stream, formatter=lambda span: span.to_json(indent=None) + "\n"
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        log.info("writing spans to %s", path)
    trace.set_tracer_provider(provider)
    global _installed
    _installed = provider
    return provider


def flush_tracing(timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
    """Send the spans still batched, then stop exporting. The batch goes out every
    OTEL_BSP_SCHEDULE_DELAY (5 s) or at exit through atexit; a Celery pool child ends in
    os._exit, which skips atexit, so it must call this or lose its last batch."""
    global _installed
    provider, _installed = _installed, None
    if provider is None:
        return
    if not provider.force_flush(timeout_ms):
        log.warning("spans not all exported within %d ms; the rest are dropped", timeout_ms)
    provider.shutdown()


def mark_image(image_id: object) -> None:
    """Tag the current span with the image it works on, so traces can be found by id."""
    trace.get_current_span().set_attribute(IMAGE_ID_ATTRIBUTE, str(image_id))


def current_context_carrier() -> dict[str, str]:
    """The current trace context as W3C headers, to store beside a deferred job."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier

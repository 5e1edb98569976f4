"""No span is lost when a process ends: with the OTLP exporter spans wait in a batch
processor, and a Celery pool child ends in os._exit (no atexit), so it must flush them
itself, whether it is recycled after max_tasks_per_child or stopped by a warm shutdown.

A real OTLP/HTTP receiver (tests/otlp_receiver.py) collects what every process exports.
The batch timer is set far beyond the test (OTEL_BSP_SCHEDULE_DELAY), so every worker span
that arrives was sent by a flush as its process ended, never by luck of timing (a batch
also goes out when 512 spans wait, which the API reaches here, a child never).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Mapping

import pytest

from imgflow_contracts.queues import Stage
from imgflow_localstack.services import API, WORKERS
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.telemetry import IMAGE_ID_ATTRIBUTE
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.stack import api_client, running_system
from tests.support import encode, every_stage_finished, photo_like, wait_for

API_SERVICE = "imgflow-upload-api"
WORKER_SERVICES = {f"imgflow-{stage.value}" for stage in Stage}


@contextlib.contextmanager
def _exporting_system(settings: Mapping[str, str]) -> Iterator[tuple[LocalSystem, OtlpReceiver]]:
    with OtlpReceiver().running() as receiver, pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # ten minutes: only flushes export
        with running_system("imgflow-otlp-", settings) as system:
            yield system, receiver


def _upload_all(system: LocalSystem, count: int) -> list[str]:
    """``count`` uploads, returned once every stage of each has finished."""
    with api_client(system) as api:
        ids = []
        for seed in range(count):
            body = encode(photo_like(160, 120, seed=seed), "JPEG")
            response = api.post("/v1/images", content=body)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])

        def all_finished() -> bool:
            return all(every_stage_finished(api.get(f"/v1/images/{i}").json()) for i in ids)

        wait_for(all_finished, timeout_s=240, what=f"{count} uploads through every stage")
    return ids


def _task_runs(spans: list[ReceivedSpan]) -> list[tuple[str, str]]:
    """(image id, task name) of every task execution span."""
    return [
        (str(s.attributes.get(IMAGE_ID_ATTRIBUTE)), s.name.removeprefix("run/"))
        for s in spans
        if s.kind == "SPAN_KIND_CONSUMER" and s.name.startswith("run/")
    ]


def _expected_runs(ids: list[str]) -> set[tuple[str, str]]:
    return {(i, stage.task_name) for i in ids for stage in Stage}


def _assert_one_whole_trace_each(spans: list[ReceivedSpan], ids: list[str]) -> None:
    """Each upload: one trace, rooted at the API's request, through the three workers,
    with no span whose parent is missing (a lost span would leave its children so)."""
    by_trace: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    assert len(_task_runs(spans)) == len(_expected_runs(ids)), "a task span came twice"
    for image_id in ids:
        (trace_id,) = {
            s.trace_id for s in spans if s.attributes.get(IMAGE_ID_ATTRIBUTE) == image_id
        }
        trace = by_trace[trace_id]
        assert {s.service for s in trace} == {API_SERVICE, *WORKER_SERVICES}, image_id
        (root,) = [s for s in trace if not s.parent_span_id]
        assert (root.service, root.kind) == (API_SERVICE, "SPAN_KIND_SERVER")
        span_ids = {s.span_id for s in trace}
        orphans = [s.name for s in trace if s.parent_span_id and s.parent_span_id not in span_ids]
        assert not orphans, f"{image_id}: parents never arrived for {orphans}"


def _wait_for_runs(receiver: OtlpReceiver, expected: set[tuple[str, str]], what: str) -> None:
    def missing() -> set[tuple[str, str]]:
        return expected - set(_task_runs(receiver.received()))

    with contextlib.suppress(AssertionError):
        wait_for(lambda: not missing(), timeout_s=30, what=what)
    assert not missing(), f"{len(missing())} of {len(expected)} task spans never arrived"


# A system of its own, and a fork per task: longer than the default per-test limit.
@pytest.mark.timeout(900)
def test_children_recycled_after_every_task_lose_no_span() -> None:
    with _exporting_system({"WORKER_MAX_TASKS_PER_CHILD": "1"}) as (system, receiver):
        ids = _upload_all(system, 50)
        # Every child ran one task and exited: each flushed its spans as it went.
        _wait_for_runs(receiver, _expected_runs(ids), "the span of every task run")
        system.stop_service(API)  # its last batch goes at exit (atexit)
        _assert_one_whole_trace_each(receiver.received(), ids)


@pytest.mark.timeout(600)
def test_a_warm_shutdown_flushes_every_child() -> None:
    with _exporting_system({}) as (system, receiver):
        ids = _upload_all(system, 5)
        # Long-lived children hold their spans in the batch...
        assert _task_runs(receiver.received()) == []
        # ...until a warm shutdown (SIGTERM) closes the pool.
        for worker in WORKERS:
            system.stop_service(worker)
        _wait_for_runs(receiver, _expected_runs(ids), "the spans flushed at shutdown")
        system.stop_service(API)
        _assert_one_whole_trace_each(receiver.received(), ids)

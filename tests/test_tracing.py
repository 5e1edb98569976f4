"""One upload is one trace: the API's request and every worker's task share a trace id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from imgflow_runtime.telemetry import IMAGE_ID_ATTRIBUTE
from tests.support import encode, photo_like, wait_for

SERVICES = {"imgflow-upload-api", "imgflow-thumbnails", "imgflow-hashing", "imgflow-dedupe"}


def _spans_of(trace_dir: Path, image_id: str) -> list[dict[str, Any]]:
    spans = []
    for path in trace_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip():
                span = json.loads(line)
                if span["attributes"].get(IMAGE_ID_ATTRIBUTE) == image_id:
                    spans.append(span)
    return spans


def test_one_upload_is_one_trace_across_every_hop(api: httpx.Client, trace_dir: Path) -> None:
    data = encode(photo_like(400, 300, seed=31), "JPEG")
    image_id = api.post("/v1/images", content=data).json()["id"]

    def every_service_traced() -> list[dict[str, Any]] | None:
        spans = _spans_of(trace_dir, image_id)
        services = {s["resource"]["attributes"]["service.name"] for s in spans}
        return spans if services == SERVICES else None

    spans = wait_for(every_service_traced, what="spans from the API and all three workers")
    assert len({span["context"]["trace_id"] for span in spans}) == 1
    api_span = next(
        s for s in spans if s["resource"]["attributes"]["service.name"] == "imgflow-upload-api"
    )
    assert api_span["kind"] == "SpanKind.SERVER"
    assert all(s["parent_id"] for s in spans if s is not api_span)

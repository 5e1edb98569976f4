"""Thousands queued with the workers stopped, then started (issue 27, "ten thousand queued").

Per relay mode, a system of its own whose breaking depth is the number of jobs put on
(IMGFLOW_QUEUED_JOBS, 600 by default; `make soak-queued` runs 20,000):

- ``fair`` (the default since issue 30): the backlog waits in the PostgreSQL outbox and
  the broker holds a couple of jobs a queue. "Queued" is the outbox: the 500 alert
  (ImgflowQueueBacklog, queue="outbox") and the 10,000 one (ImgflowBacklogBreaking).
  Past the breaking depth the tenant holding the backlog is refused, one with nothing
  waiting is admitted.
- ``fifo``: every job goes to the broker at once, as before issue 30; the 500 alert on the
  broker's queue and the 10,000 one (ImgflowQueueDepthCritical); past the breaking depth
  every tenant is refused. This is where Valkey holds the backlog: its memory per
  queued job is measured here.

A real Prometheus scrapes the run with the real rules, their `for` durations set to 0 s
(the durations have their promtool cases in tests/monitoring/rules_test.yml; this test
proves the expressions fire on what the running system reports). The 10,000 alerts must
fire when more than 10,000 are queued and stay silent otherwise. Then the workers start
and every upload must finish, each stage run once, nothing left behind.

Upload latency (client side) while the backlog sits and while it drains is reported,
not asserted (timings belong to `make bench`); so are Valkey's bytes per queued job
and the outbox's PostgreSQL bytes per job.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from PIL import Image, ImageDraw

from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.system import LocalSystem
from tests.monitoring.prometheus_server import Prometheus, running_prometheus
from tests.monitoring.tools import RULES_FILE
from tests.stack import running_system
from tests.support import bearer, new_tenant, query, wait_for

JOBS = int(os.environ.get("IMGFLOW_QUEUED_JOBS", "600"))
CLIENTS = 8
DRAIN_PROBES = 30  # uploads by another tenant while the backlog drains
WORKERS = ("thumbnailer", "hasher", "deduper")
ALERT_DEPTH, BREAKING_ALERT_DEPTH = 500, 10_000  # deploy/prometheus/rules.yml
TARGET = CommonSettings.model_fields["outbox_broker_target_depth"].default


def tiny_png(i: int) -> bytes:
    """A small 64x48 PNG of four random shapes (~300 bytes), a picture of its own per
    ``i``: the jobs count, not the images, but they must be different photos to the
    deduper. Copies of one picture (the first version: 16x12, one pixel apart) chain
    every upload into one duplicate component whose upkeep grows with it: the 20,000
    drain's checks went from 0.3 to 1.2 s in ten minutes (2026-12-06)."""
    rng = random.Random(i)
    image = Image.new("RGB", (64, 48), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y, w, h = (
            rng.randrange(48),
            rng.randrange(36),
            rng.randrange(8, 40),
            rng.randrange(6, 30),
        )
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def quick_rules(work_dir: Path) -> Path:
    """The real rules with every `for` at 0 s."""
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    path = work_dir / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


@pytest.fixture(params=["fair", "fifo"])
def queued_system(request: pytest.FixtureRequest) -> Iterator[LocalSystem]:
    settings = {
        "OUTBOX_SCHEDULING": request.param,
        "QUEUE_BREAKING_DEPTH": str(JOBS),
        "QUEUE_DEPTH_REFRESH_S": "0.2",
        "OUTBOX_RELAY_INTERVAL_S": "0.2",
    }
    with running_system(f"imgflow-queued-{request.param}-", settings) as system:
        yield system


def _upload(client: httpx.Client, data: bytes) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = client.post("/v1/images", content=data)
    return response, time.perf_counter() - started


@pytest.mark.timeout(max(3600, 2 * JOBS))
def test_thousands_queued_then_drained(queued_system: LocalSystem, tmp_path: Path) -> None:
    system = queued_system
    settings = system.settings()
    db = settings.database_url
    mode = settings.outbox_scheduling
    valkey = redis.Redis.from_url(settings.broker_url)
    for name in WORKERS:
        system.stop_service(name)
    importer, other = new_tenant(system, "import"), new_tenant(system, "other")
    started = time.monotonic()

    with (
        httpx.Client(
            base_url=system.api_url, timeout=60, headers=bearer(importer["api_key"])
        ) as client,
        httpx.Client(
            base_url=system.api_url, timeout=60, headers=bearer(other["api_key"])
        ) as other_client,
        running_prometheus(
            {f"imgflow-{n}": url for n, url in system.metrics_urls().items()},
            tmp_path / "prometheus",
            quick_rules(tmp_path),
        ) as prometheus,
    ):
        valkey_before = valkey.info("memory")["used_memory"]

        # Fill: the backlog grows to the breaking depth and never past it, so every
        # upload is admitted (a refusal needs a depth *past* the limit).
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(lambda i: _upload(client, tiny_png(i)), range(JOBS)))
        assert [r.status_code for r, _ in answers] == [201] * JOBS, next(
            r.text for r, _ in answers if r.status_code != 201
        )
        accepted = [r.json()["id"] for r, _ in answers]
        fill_latency = [t for _, t in answers]
        filled_in = time.monotonic() - started

        def where() -> tuple[int, dict[str, int]]:
            [row] = query(db, "SELECT count(*) AS n FROM outbox")
            return row["n"], {q: valkey.llen(q) for q in ("thumbnails", "hashing", "dedupe")}

        # Settled: fair keeps TARGET a queue in the broker, plus at most TARGET more that
        # the express lane put at its head while the importer had little waiting (its
        # first uploads); fifo hands over everything.
        def settled() -> tuple[int, int] | None:
            outbox, broker = where()
            in_broker = broker["thumbnails"]
            if mode == "fifo":
                ok = (outbox, in_broker) == (0, JOBS)
            else:
                ok = outbox + in_broker == JOBS and TARGET <= in_broker <= 2 * TARGET
            return (outbox, in_broker) if ok else None

        waiting, in_broker = wait_for(settled, what="the backlog settled (outbox, broker)")
        valkey_grew = valkey.info("memory")["used_memory"] - valkey_before
        [outbox_bytes] = query(db, "SELECT pg_total_relation_size('outbox') AS n")

        # Past the breaking depth: the importer's uploads go on until the API's depth
        # (read every 0.2 s) passes the limit, then it is refused with what its settings say.
        def refused() -> httpx.Response | None:
            response, _ = _upload(client, tiny_png(JOBS + len(accepted)))
            if response.status_code == 201:
                accepted.append(response.json()["id"])
                return None
            return response

        refusal = wait_for(refused, what="the importer refused past the breaking depth")
        assert refusal.status_code == 503 and refusal.headers["Retry-After"], refusal.text
        problem = refusal.json()
        assert problem["type"] == "urn:imgflow:problem:overloaded", problem
        assert 0 < len(accepted) - JOBS <= 20  # one refresh of the depths at most
        outbox_now, broker_now = where()
        if mode == "fair":
            assert JOBS < problem["depths"]["outbox"] <= outbox_now
            assert problem["tenant_queued"] == problem["depths"]["outbox"]
            assert problem["fair_share"] == JOBS  # the breaking depth // one tenant waiting
            # A tenant with nothing waiting is admitted past the breaking depth.
            response, _ = _upload(other_client, tiny_png(10**6))
            assert response.status_code == 201, response.text
            accepted.append(response.json()["id"])
        else:
            assert JOBS < problem["depths"]["thumbnails"] <= broker_now["thumbnails"]
            # The broker's queue is past the limit: who queued it is unknown, all wait.
            response, _ = _upload(other_client, tiny_png(10**6))
            assert response.status_code == 503, response.text

        # The alerts, in a real Prometheus scraping this run.
        queue = "outbox" if mode == "fair" else "thumbnails"
        breaking = "ImgflowBacklogBreaking" if mode == "fair" else "ImgflowQueueDepthCritical"
        backlog = ("ImgflowQueueBacklog", queue)
        wait_for(lambda: backlog in prometheus.firing(), what=f"{backlog} firing")
        breaking_fires = JOBS > BREAKING_ALERT_DEPTH
        if breaking_fires:
            label = "" if mode == "fair" else queue
            wait_for(lambda: (breaking, label) in prometheus.firing(), what=f"{breaking}")
        else:
            assert _depth_seen(prometheus, mode) > ALERT_DEPTH  # scraped, and evaluated:
            assert breaking not in {name for name, _ in prometheus.firing()}

        backlog_report = (
            f"\n{mode}: {JOBS} queued in {filled_in:.1f} s (upload p50"
            f" {p(fill_latency, 50):.0f} ms, p99 {p(fill_latency, 99):.0f} ms);"
            + (
                f" Valkey grew {valkey_grew} B"
                f" ({valkey_grew / in_broker:.0f} B a job in the broker)"
                if mode == "fifo"
                else f" Valkey grew {valkey_grew} B in all"
                f" ({in_broker} thumbnail jobs in the broker);"
                f" the outbox's table {outbox_bytes['n']} B"
                f" ({outbox_bytes['n'] / waiting:.0f} B a job waiting)"
            )
        )
        if mode == "fifo":
            # The workers' side is the same in both modes: the fair run drains its backlog
            # and checks it (a second drain would double the test's time for nothing new).
            print(backlog_report)
            return

        # Drain: start the workers; the other tenant keeps uploading meanwhile.
        drain_started = time.monotonic()
        for name in WORKERS:
            system.start_service(name)
        drain_latency: list[float] = []

        def all_done() -> bool:
            if len(drain_latency) < DRAIN_PROBES:  # a bounded number, or it never drains
                response, took = _upload(other_client, tiny_png(2 * 10**6 + len(drain_latency)))
                drain_latency.append(took)
                if response.status_code == 201:
                    accepted.append(response.json()["id"])
                else:
                    assert response.status_code == 503, response.text  # fifo, still too deep
            [row] = query(
                db,
                "SELECT count(*) AS n FROM image_stages"
                " WHERE image_id = ANY($1::uuid[]) AND status <> 'done'",
                accepted,
            )
            return row["n"] == 0

        wait_for(all_done, timeout_s=max(1800, JOBS), what="every stage of every upload done")
        drained_in = time.monotonic() - drain_started
        wait_for(lambda: backlog not in prometheus.firing(), what=f"{backlog} resolved")

    # Nothing lost, nothing doubled: one image each, every stage done and run once,
    # three renditions each, nothing left in the outbox or dead-lettered.
    n = len(set(accepted))
    assert n == len(accepted)
    [counts] = query(
        db,
        """SELECT (SELECT count(*) FROM images WHERE id = ANY($1::uuid[])) AS images,
                  (SELECT count(*) FROM image_stages WHERE image_id = ANY($1::uuid[])
                      AND status = 'done' AND attempts = 1) AS stages_once,
                  (SELECT count(*) FROM renditions WHERE image_id = ANY($1::uuid[]))
                      AS renditions,
                  (SELECT count(*) FROM outbox) AS outbox,
                  (SELECT count(*) FROM dead_letters) AS dead""",
        accepted,
    )
    assert counts == {
        "images": n,
        "stages_once": 3 * n,
        "renditions": 3 * n,
        "outbox": 0,
        "dead": 0,
    }

    print(
        f"{backlog_report}; drained {n} uploads in {drained_in:.1f} s (uploads meanwhile:"
        f" p50 {p(drain_latency, 50):.0f} ms, p99 {p(drain_latency, 99):.0f} ms,"
        f" {len(drain_latency)} of them)"
    )


def _depth_seen(prometheus: Prometheus, mode: str) -> float:
    metric = "imgflow_outbox_pending" if mode == "fair" else "max(imgflow_queue_depth)"
    return max(float(s["value"][1]) for s in prometheus.query(metric))

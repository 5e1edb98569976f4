"""Soak: many uploads while workers are killed at random, then count everything.

IMGFLOW_SOAK_UPLOADS sets the number (1,000 by default). Clients upload from threads;
the main thread kills: a pool child (the worker hands its job back) or a whole worker
(its unacked jobs come back after the visibility timeout, or through the sweeper), and
restarts killed workers. Uploads refused with 503 (backpressure) are retried by the
client, as a well-behaved client would. At the end every accepted upload must be fully
processed, exactly once: one image row, three stages done, three renditions in
PostgreSQL and in S3, nothing left in the outbox or the dead-letter store.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import httpx
import psutil
import pytest

from imgflow_contracts.keys import analysis_key, features_key
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.faults.support import kill_worker, worker_pids
from tests.support import encode, photo_like, query, wait_for

UPLOADS = int(os.environ.get("IMGFLOW_SOAK_UPLOADS", "1000"))
CLIENTS = 8
WORKERS = ("thumbnailer", "hasher", "deduper")


def _images(count: int) -> list[bytes]:
    # A few bases made distinct per upload by one pixel, so no two uploads are equal.
    bases = [photo_like(96, 72, seed=s) for s in range(8)]
    images = []
    for i in range(count):
        img = bases[i % len(bases)].copy()
        img.putpixel((i % 96, (i // 96) % 72), (i % 256, (i // 256) % 256, 7))
        images.append(encode(img, "PNG"))
    return images


def _upload_until_accepted(client: httpx.Client, data: bytes, stop: threading.Event) -> str:
    while not stop.is_set():
        response = client.post("/v1/images", content=data)
        if response.status_code == 201:
            return response.json()["id"]
        assert response.status_code == 503, response.text  # backpressure: try again
        time.sleep(0.2)
    raise RuntimeError("stopped")


@pytest.mark.timeout(2400)
def test_soak_with_random_worker_kills(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str, fault_store: ObjectStore
) -> None:
    system = healthy
    rng = random.Random(20261125)
    images = _images(UPLOADS)
    stop = threading.Event()
    started = time.monotonic()

    with (
        httpx.Client(base_url=system.api_url, timeout=60, headers=system.auth_headers) as client,
        ThreadPoolExecutor(CLIENTS) as pool,
    ):
        futures = [pool.submit(_upload_until_accepted, client, data, stop) for data in images]
        kills = {"child": 0, "worker": 0}
        try:
            # Kill while uploads are arriving and while the backlog drains.
            while not all(f.done() for f in futures) or kills["worker"] + kills["child"] < 6:
                time.sleep(rng.uniform(1.0, 2.5))  # pacing between kills, not a wait
                name = rng.choice(WORKERS)
                if rng.random() < 0.5:
                    _, children = worker_pids(system, name)
                    for child in children:
                        psutil.Process(child).kill()
                    kills["child"] += 1
                else:
                    kill_worker(system, name)
                    system.start_service(name)
                    kills["worker"] += 1
        finally:
            stop.set()
        accepted = [f.result() for f in futures]
    uploaded_in = time.monotonic() - started

    # Only this test's images: the fault package's other tests leave images that failed on
    # purpose (an undecodable file is final on its first attempt) in the same system.
    def all_done() -> bool:
        [row] = query(
            fault_db,
            "SELECT count(*) AS n FROM image_stages"
            " WHERE image_id = ANY($1::uuid[]) AND status <> 'done'",
            accepted,
        )
        return row["n"] == 0

    # A bound on liveness, not a timing: the images are eight pictures one pixel apart,
    # so each check regroups a duplicate component that grows with the run (its checks
    # went from 0.1 to 0.8 s a job in a full run, 2026-12-06), and a loaded machine
    # drains slower.
    wait_for(all_done, timeout_s=1200, what="every stage of every upload to be done")
    total = time.monotonic() - started
    print(
        f"\nsoak: {UPLOADS} uploads in {uploaded_in:.1f} s, all processed after "
        f"{total:.1f} s, with {kills['child']} pool children and {kills['worker']} "
        "workers SIGKILLed"
    )

    assert len(set(accepted)) == UPLOADS
    [counts] = query(
        fault_db,
        """SELECT (SELECT count(*) FROM renditions WHERE image_id = ANY($1::uuid[]))
                      AS renditions,
                  (SELECT count(*) FROM outbox) AS outbox,
                  (SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL
                      AND image_id = ANY($1::uuid[])) AS dead""",
        accepted,
    )
    [mine] = query(
        fault_db, "SELECT count(*) AS n FROM images WHERE id = ANY($1::uuid[])", accepted
    )
    assert mine["n"] == UPLOADS
    [done] = query(
        fault_db,
        """SELECT count(*) AS stages, count(DISTINCT r.image_id) AS with_renditions
             FROM image_stages AS s
             LEFT JOIN renditions AS r ON r.image_id = s.image_id AND r.size = 150
            WHERE s.image_id = ANY($1::uuid[]) AND s.status = 'done'""",
        accepted,
    )
    assert done["stages"] == 3 * UPLOADS
    assert done["with_renditions"] == UPLOADS
    assert counts["outbox"] == 0
    assert counts["dead"] == 0, query(
        fault_db,
        "SELECT stage, reason, attempts FROM dead_letters"
        " WHERE resolved_at IS NULL AND image_id = ANY($1::uuid[])",
        accepted,
    )
    assert counts["renditions"] == 3 * UPLOADS
    mine_ids = set(accepted)
    stored = {
        o.object_name
        for o in fault_store.client.list_objects(
            fault_store.bucket, prefix="renditions/", recursive=True
        )
        if o.object_name.split("/")[1] in mine_ids
    }
    assert all(f"renditions/{i}/150.webp" in stored for i in accepted)
    # and one analysis copy per image (keys.analysis_key), at most one set of the
    # deduper's kept features (keys.features_key: made when a check needed them), no
    # other object
    copies = {name for name in stored if name.endswith("/analysis.jpg")}
    assert copies == {analysis_key(UUID(i)) for i in accepted}
    features = stored - copies - {n for n in stored if n.endswith(".webp")}
    assert features <= {features_key(UUID(i)) for i in accepted}
    assert len(stored) == counts["renditions"] + len(copies) + len(features)

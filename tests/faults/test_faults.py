"""Each fault test: break something mid-flight, then prove every accepted upload ends
fully processed (or visibly failed, with its job kept for replay), nothing duplicated."""

from __future__ import annotations

import json
import re
import time

import httpx
import psutil

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.celery_app import make_producer_app
from imgflow_runtime.storage import ObjectStore
from tests.faults.conftest import ADMIN_TOKEN, BREAKING_DEPTH
from tests.faults.support import (
    frozen,
    image,
    kill_worker,
    stage_status,
    upload,
    wait_ready,
    worker_pids,
)
from tests.support import admin_cli, encode, photo_like, query, wait_for

WORKERS = ("thumbnailer", "hasher", "deduper")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _stop_workers(system: LocalSystem) -> None:
    for name in WORKERS:
        system.stop_service(name)


def _start_workers(system: LocalSystem, *names: str) -> None:
    for name in names or WORKERS:
        system.start_service(name)


def _rendition_rows(database_url: str, image_id: str) -> int:
    [row] = query(
        database_url, "SELECT count(*) AS n FROM renditions WHERE image_id = $1::uuid", image_id
    )
    return row["n"]


def _jpeg(seed: int) -> bytes:
    return encode(photo_like(200, 150, seed=seed), "JPEG")


def _log_says(system: LocalSystem, name: str, text: str) -> bool:
    return text in system.service(name).log_path.read_text(errors="replace")


def test_a_worker_killed_mid_task_loses_nothing(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str
) -> None:
    system = healthy
    _stop_workers(system)
    image_id = upload(fault_api, seed=101)
    with frozen(system.stack.s3):  # the task blocks reading the original: mid-task
        _start_workers(system, "thumbnailer")
        wait_for(
            lambda: stage_status(fault_api, image_id, "thumbnails") == "running",
            timeout_s=30,
            what="the thumbnail task to start",
        )
        kill_worker(system, "thumbnailer")
    _start_workers(system, "thumbnailer")
    back_at = time.monotonic()
    # The job was unacked when its worker died: the broker redelivers it after the
    # visibility timeout (20 s here), or the sweeper re-enqueues it (running > 20 s).
    wait_for(
        lambda: stage_status(fault_api, image_id, "thumbnails") == "done",
        timeout_s=60,
        what="the killed job to be done",
    )
    print(f"\nworker SIGKILLed mid-task: done {time.monotonic() - back_at:.1f} s after restart")
    _start_workers(system, "hasher", "deduper")

    body, _ = wait_ready(fault_api, image_id)
    assert body["stages"]["thumbnails"]["attempts"] >= 2
    assert _rendition_rows(fault_db, image_id) == 3


def test_a_pool_child_killed_mid_task_is_redelivered(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str
) -> None:
    system = healthy
    _stop_workers(system)
    image_id = upload(fault_api, seed=102)
    # The hashing job is enqueued when the thumbnails are done (queues.AFTER).
    _start_workers(system, "thumbnailer")
    wait_for(
        lambda: stage_status(fault_api, image_id, "thumbnails") == "done",
        timeout_s=30,
        what="the thumbnails the hasher reads",
    )
    with frozen(system.stack.s3):
        _start_workers(system, "hasher")
        wait_for(
            lambda: stage_status(fault_api, image_id, "hashing") == "running",
            timeout_s=30,
            what="the hashing task to start",
        )
        main, children = worker_pids(system, "hasher")
        for child in children:
            psutil.Process(child).kill()
    killed_at = time.monotonic()
    # The worker sees its child die and hands the job back (task_reject_on_worker_lost).
    wait_for(
        lambda: stage_status(fault_api, image_id, "hashing") == "done",
        timeout_s=60,
        what="the job of the killed child to be done",
    )
    print(f"\npool child SIGKILLed mid-task: done {time.monotonic() - killed_at:.1f} s later")
    assert system.service("hasher").child.pid == main  # the worker itself lived on
    _start_workers(system, "deduper")

    body, _ = wait_ready(fault_api, image_id)
    assert body["stages"]["hashing"]["attempts"] >= 2
    assert body["width"] == 320


def test_jobs_retry_through_an_s3_outage(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str
) -> None:
    system = healthy
    _stop_workers(system)
    ids = [upload(fault_api, seed=110 + i) for i in range(3)]
    system.stack.s3.stop()
    try:
        _start_workers(system, "thumbnailer")
        wait_for(
            lambda: _log_says(system, "thumbnailer", "retrying"),
            timeout_s=30,
            what="a thumbnail job to fail against the stopped S3 and retry",
        )
    finally:
        system.stack.s3.start()
    back_at = time.monotonic()
    wait_for(
        lambda: all(stage_status(fault_api, i, "thumbnails") == "done" for i in ids),
        timeout_s=60,
        what="the retrying thumbnail jobs",
    )
    print(f"\nS3 outage: retrying jobs done {time.monotonic() - back_at:.1f} s after S3 returned")
    _start_workers(system, "hasher", "deduper")

    for image_id in ids:
        body, _ = wait_ready(fault_api, image_id)
        assert body["stages"]["thumbnails"]["attempts"] >= 2
        assert _rendition_rows(fault_db, image_id) == 3


def test_an_outage_past_the_retries_dead_letters_the_job_for_replay(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str
) -> None:
    system = healthy
    _stop_workers(system)
    image_id = upload(fault_api, seed=120)
    system.stack.s3.stop()
    try:
        _start_workers(system)

        # The thumbnail stage gives up first; the stages it releases then read S3 too.
        def all_failed() -> dict | None:
            body = image(fault_api, image_id)
            return body if all(s["status"] == "failed" for s in body["stages"].values()) else None

        body = wait_for(all_failed, timeout_s=120, what="every S3-reading stage to give up")
    finally:
        system.stack.s3.start()
    assert body["status"] == "failed"
    assert "gave up after 9 attempts" in body["stages"]["thumbnails"]["error"]

    assert fault_api.get("/v1/admin/dead-letters").status_code == 401
    letters = [
        d
        for d in fault_api.get("/v1/admin/dead-letters", headers=ADMIN).json()
        if d["image_id"] == image_id
    ]
    assert sorted(d["stage"] for d in letters) == ["dedupe", "hashing", "thumbnails"]
    for letter in letters:
        replay = fault_api.post(f"/v1/admin/dead-letters/{letter['id']}/replay", headers=ADMIN)
        assert replay.status_code == 202, replay.text
    again = fault_api.post(f"/v1/admin/dead-letters/{letters[0]['id']}/replay", headers=ADMIN)
    assert again.status_code == 409

    wait_ready(fault_api, image_id)
    assert _rendition_rows(fault_db, image_id) == 3
    listed = admin_cli(system, "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    assert image_id not in listed.stdout


def test_postgres_restart(
    healthy: LocalSystem, fault_api: httpx.Client, fault_store: ObjectStore
) -> None:
    system = healthy
    _stop_workers(system)
    ids = [upload(fault_api, seed=130 + i) for i in range(3)]
    originals = len(
        list(
            fault_store.client.list_objects(fault_store.bucket, prefix="originals/", recursive=True)
        )
    )
    system.stack.postgres.stop()
    try:
        down = fault_api.post("/v1/images", content=_jpeg(131))
        assert down.status_code == 503, down.text
        assert down.json()["code"] == "database-unavailable"
        assert down.headers["retry-after"]
        assert fault_api.get(f"/v1/images/{ids[0]}").status_code == 503
        # The first stage: the others are enqueued when it finishes (queues.AFTER).
        _start_workers(system, "thumbnailer")
        worker = system.service("thumbnailer").child
        pid = worker.pid
        # This run's log only (earlier tests wrote "retrying" too), and a retry of one of
        # this test's own images.
        retried = re.compile(rf"thumbnails attempt \d+ for ({'|'.join(ids)}) failed, retrying")
        wait_for(
            lambda: retried.search(worker.read_log()),
            timeout_s=30,
            what="a job of this test to fail against the stopped PostgreSQL and retry",
        )
    finally:
        system.stack.postgres.start()
    assert worker.is_running() and worker.pid == pid, "the worker did not survive the outage"
    back_at = time.monotonic()
    wait_for(
        lambda: all(stage_status(fault_api, i, "thumbnails") == "done" for i in ids),
        timeout_s=60,
        what="the retrying thumbnail jobs",
    )
    print(f"\nPostgreSQL restart: retrying jobs done {time.monotonic() - back_at:.1f} s after")
    assert worker.is_running() and worker.pid == pid
    _start_workers(system, "hasher", "deduper")

    for image_id in ids:
        wait_ready(fault_api, image_id)
    # The upload refused while PostgreSQL was down left no object behind.
    assert (
        len(
            list(
                fault_store.client.list_objects(
                    fault_store.bucket, prefix="originals/", recursive=True
                )
            )
        )
        == originals
    )
    assert fault_api.post("/v1/images", content=_jpeg(132)).status_code == 201


def test_poison_messages_are_dead_lettered_and_the_worker_goes_on(
    healthy: LocalSystem, fault_api: httpx.Client, fault_settings: CommonSettings, fault_db: str
) -> None:
    image_id = upload(fault_api, seed=140)
    wait_ready(fault_api, image_id)
    producer = make_producer_app(fault_settings)
    try:
        producer.send_task(Stage.HASHING.task_name, kwargs={"poison": "not an ImageJob"})
        [image] = query(fault_db, "SELECT object_key FROM images WHERE id = $1::uuid", image_id)
        wrong_queue = ImageJob(
            image_id=image_id, stage=Stage.THUMBNAILS, object_key=image["object_key"]
        )
        producer.send_task(
            Stage.HASHING.task_name, kwargs=wrong_queue.to_message(), queue=Stage.HASHING.queue
        )
    finally:
        producer.close()

    letters = wait_for(
        lambda: (
            (
                rows := query(
                    fault_db,
                    "SELECT payload, reason FROM dead_letters "
                    "WHERE image_id IS NULL AND stage = 'hashing'",
                )
            )
            and len(rows) >= 2
            and rows
        ),
        timeout_s=30,
        what="two poison messages in the dead-letter store",
    )
    payloads = [json.dumps(r["payload"]) for r in letters]
    assert any("not an ImageJob" in p for p in payloads)
    assert any("delivered to the hashing queue" in r["reason"] for r in letters)
    wait_ready(fault_api, upload(fault_api, seed=141))


def test_a_task_past_its_soft_time_limit_fails_visibly_and_replays(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str
) -> None:
    system = healthy
    system.stop_service("hasher")
    image_id = upload(fault_api, seed=150)
    wait_for(
        lambda: all(
            image(fault_api, image_id)["stages"][s]["status"] == "done"
            for s in ("thumbnails", "dedupe")
        ),
        what="the other stages",
    )
    with frozen(system.stack.s3):  # the hasher's read hangs past the 10 s soft limit
        _start_workers(system, "hasher")
        failed = wait_for(
            lambda: (
                (s := image(fault_api, image_id)["stages"]["hashing"])["status"] == "failed" and s
            ),
            timeout_s=60,
            what="the soft time limit",
        )
    assert "soft time limit of 10 s" in failed["error"]
    [letter] = query(
        fault_db,
        "SELECT id FROM dead_letters WHERE image_id = $1::uuid AND resolved_at IS NULL",
        image_id,
    )

    replayed = admin_cli(system, "dead-letters", "replay", str(letter["id"]))

    assert replayed.returncode == 0, replayed.stderr
    body, _ = wait_ready(fault_api, image_id)
    assert body["width"] == 320


def test_uploads_get_503_past_the_breaking_depth_and_resume_after(
    healthy: LocalSystem, fault_api: httpx.Client
) -> None:
    system = healthy
    system.stop_service("thumbnailer")
    accepted: list[str] = []
    refused = None
    for seed in range(1000, 1000 + BREAKING_DEPTH * 3):
        response = fault_api.post("/v1/images", content=_jpeg(seed))
        if response.status_code == 503:
            refused = response
            break
        assert response.status_code == 201, response.text
        accepted.append(response.json()["id"])
    assert refused is not None, "no 503 past the breaking depth"
    assert len(accepted) >= BREAKING_DEPTH
    problem = refused.json()
    assert problem["code"] == "overloaded"
    # The backlog waits in the outbox (fair scheduling), and this tenant holds all of it.
    assert problem["depths"]["outbox"] > BREAKING_DEPTH
    assert problem["tenant_queued"] > problem["fair_share"]
    assert int(refused.headers["retry-after"]) > 0

    _start_workers(system, "thumbnailer")
    wait_for(
        lambda: fault_api.post("/v1/images", content=_jpeg(3)).status_code == 201,
        timeout_s=120,
        what="uploads to be accepted again",
    )
    for image_id in accepted:
        wait_ready(fault_api, image_id, timeout_s=180)

"""What operators rely on: health, readiness, metrics, migrations, idempotent reruns, outbox."""

from __future__ import annotations

from uuid import UUID

import httpx

from imgflow_contracts.keys import features_key
from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_contracts.schema.migrate import run_migrations
from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.celery_app import make_producer_app
from imgflow_runtime.storage import ObjectStore
from tests.support import encode, photo_like, query, wait_for


def _upload(api: httpx.Client, seed: int) -> str:
    data = encode(photo_like(500, 400, seed=seed), "JPEG")
    response = api.post("/v1/images", content=data)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _status(api: httpx.Client, image_id: str) -> dict:
    return api.get(f"/v1/images/{image_id}").json()


def test_health_readiness_and_metrics(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "broker": "ok", "s3": "ok"}
    metrics = api.get("/metrics").text
    for name in (
        'imgflow_queue_depth{queue="thumbnails"}',
        'imgflow_queue_depth{queue="thumbnails.express"}',
        "imgflow_outbox_pending",
        "imgflow_http_request_duration_seconds_bucket",
    ):
        assert name in metrics


def test_openapi_documents_the_routes(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/v1/images", "/v1/images/{image_id}", "/healthz", "/readyz"} <= set(paths)


def test_migrations_are_idempotent(database_url: str) -> None:
    assert run_migrations(database_url) == []
    versions = query(database_url, "SELECT version FROM schema_migrations")
    assert {"0001_initial"} <= {r["version"] for r in versions}


def test_a_job_delivered_again_leaves_one_set_of_results(
    api: httpx.Client, store: ObjectStore, settings: CommonSettings, database_url: str
) -> None:
    image_id = _upload(api, seed=11)
    wait_for(lambda: _status(api, image_id)["status"] == "ready", what="first run")
    before = {
        o.object_name
        for o in store.client.list_objects(
            store.bucket, prefix=f"renditions/{image_id}/", recursive=True
        )
    }
    # Make the stage runnable again, as a redelivery after a crash would find it.
    query(
        database_url,
        "UPDATE image_stages SET status = 'running' "
        "WHERE image_id = $1::uuid AND stage = 'thumbnails'",
        image_id,
    )
    [image] = query(database_url, "SELECT object_key FROM images WHERE id = $1::uuid", image_id)
    job = ImageJob(image_id=image_id, stage=Stage.THUMBNAILS, object_key=image["object_key"])
    producer = make_producer_app(settings)
    for _ in range(2):
        producer.send_task(Stage.THUMBNAILS.task_name, kwargs=job.to_message())

    def rerun_done() -> bool:
        stage = _status(api, image_id)["stages"]["thumbnails"]
        return stage["status"] == "done" and stage["attempts"] >= 2

    wait_for(rerun_done, what="the redelivered job")
    after = {
        o.object_name
        for o in store.client.list_objects(
            store.bucket, prefix=f"renditions/{image_id}/", recursive=True
        )
    }
    # Three renditions and the analysis copy. Not the deduper's kept features: made only
    # when a check needs them, dropped by a new analysis copy, made again by the next
    # check (tests/test_dedupe_features.py).
    kept_features = {features_key(UUID(image_id))}
    assert after - kept_features == before - kept_features and len(after - kept_features) == 4
    [count] = query(
        database_url, "SELECT count(*) AS n FROM renditions WHERE image_id = $1::uuid", image_id
    )
    assert count["n"] == 3
    producer.close()


def test_uploads_accepted_while_the_broker_is_down_are_processed_after(
    system: LocalSystem, api: httpx.Client, database_url: str
) -> None:
    system.stack.valkey.stop()
    try:
        image_id = _upload(api, seed=21)
        readiness = api.get("/readyz")
        assert readiness.status_code == 503
        assert readiness.json()["checks"]["broker"] != "ok"
        jobs = query(database_url, "SELECT queue FROM outbox WHERE image_id = $1::uuid", image_id)
        # the hasher and the deduper are enqueued by the thumbnailer when it finishes
        assert [j["queue"] for j in jobs] == ["thumbnails"]
    finally:
        system.stack.valkey.start()

    image = wait_for(
        lambda: (s := _status(api, image_id))["status"] == "ready" and s,
        timeout_s=90,
        what="the outbox to drain once the broker is back",
    )
    assert all(stage["status"] == "done" for stage in image["stages"].values())
    assert query(database_url, "SELECT id FROM outbox WHERE image_id = $1::uuid", image_id) == []

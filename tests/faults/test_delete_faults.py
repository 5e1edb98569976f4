"""DELETE never leaves an image half-deleted: it marks the image (committed), removes
its objects with no transaction open, then deletes the rows. Whatever fails after the
mark, the image stays hidden and the deletion finishes by itself once the server is back
(the API's sweeper, IMAGE_DELETE_FINISH_AFTER_S in FAULT_SETTINGS)."""

from __future__ import annotations

import threading
import uuid

import httpx

from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.faults.support import frozen, upload, wait_ready
from tests.support import query, wait_for


def _original_key(db: str, image_id: str) -> str:
    [row] = query(db, "SELECT object_key FROM images WHERE id = $1", uuid.UUID(image_id))
    return row["object_key"]


def _mark(db: str, image_id: str) -> list[dict]:
    return query(db, "SELECT deleting_since FROM images WHERE id = $1", uuid.UUID(image_id))


def _objects(store: ObjectStore, image_id: str, original_key: str) -> list[str]:
    derived = store.client.list_objects(
        store.bucket, prefix=f"renditions/{image_id}/", recursive=True
    )
    names = [o.object_name for o in derived]
    return [*names, original_key] if store.exists(original_key) else names


def _gone(store: ObjectStore, db: str, image_id: str, original_key: str) -> bool:
    return not _mark(db, image_id) and not _objects(store, image_id, original_key)


def test_a_delete_refused_by_s3_hides_the_image_and_finishes_when_s3_returns(
    healthy: LocalSystem, fault_api: httpx.Client, fault_store: ObjectStore, fault_db: str
) -> None:
    system = healthy
    image_id = upload(fault_api, seed=901)
    wait_ready(fault_api, image_id)
    key = _original_key(fault_db, image_id)
    assert len(_objects(fault_store, image_id, key)) == 5  # original, 3 sizes, analysis copy

    system.stack.s3.stop()
    try:
        refused = fault_api.delete(f"/v1/images/{image_id}")
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "storage-unavailable"
        # Marked, never half visible: hidden from every read, its rows all still there.
        [row] = _mark(fault_db, image_id)
        assert row["deleting_since"] is not None
        assert fault_api.get(f"/v1/images/{image_id}").status_code == 404
        listed = fault_api.get("/v1/images", params={"limit": 200}).json()["items"]
        assert image_id not in {item["id"] for item in listed}
    finally:
        system.stack.s3.start()
    # Nobody retries: the API's sweeper finishes it.
    wait_for(
        lambda: _gone(fault_store, fault_db, image_id, key),
        timeout_s=60,
        what="the interrupted delete to finish by itself",
    )
    assert fault_api.delete(f"/v1/images/{image_id}").status_code == 404


def test_postgres_lost_mid_delete_leaves_it_hidden_and_it_finishes_after(
    healthy: LocalSystem, fault_api: httpx.Client, fault_store: ObjectStore, fault_db: str
) -> None:
    system = healthy
    image_id = upload(fault_api, seed=902)
    wait_ready(fault_api, image_id)
    key = _original_key(fault_db, image_id)
    answers: list[httpx.Response] = []
    deleting = threading.Thread(
        target=lambda: answers.append(fault_api.delete(f"/v1/images/{image_id}"))
    )
    try:
        with frozen(system.stack.s3):  # the delete waits on S3 after its mark...
            deleting.start()
            wait_for(
                lambda: (rows := _mark(fault_db, image_id)) and rows[0]["deleting_since"],
                timeout_s=30,
                what="the delete to mark the image",
            )
            # ...holding no transaction open meanwhile.
            assert not query(
                fault_db,
                "SELECT pid FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
                "AND query LIKE '%deleting_since%'",
            )
            system.stack.postgres.stop()  # ...and PostgreSQL goes before the rows do
        deleting.join(timeout=90)
        assert answers and answers[0].status_code == 503, answers
        assert answers[0].json()["code"] == "database-unavailable"
        assert _objects(fault_store, image_id, key) == []  # S3's part was done
    finally:
        system.stack.postgres.start()
    wait_for(
        lambda: _gone(fault_store, fault_db, image_id, key),
        timeout_s=60,
        what="the rows of the interrupted delete to go",
    )
    assert fault_api.get(f"/v1/images/{image_id}").status_code == 404

"""The image API beyond upload, against the real stack and workers: listing with cursors
and filters, delete (in-flight jobs included), reprocess, and downloads (streamed, and
redirected to presigned S3 URLs)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import psutil
import pytest

from imgflow_contracts.settings import ENV_PREFIX
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.app import create_app
from imgflow_upload_api.settings import ApiSettings
from tests.support import bearer, encode, new_tenant, photo_like, query, wait_for

STAGES = ("thumbnails", "hashing", "dedupe")
WORKERS = ("thumbnailer", "hasher", "deduper")


def _jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    return encode(photo_like(*size, seed=seed), "JPEG", quality=85)


def _client_of_new_tenant(system: LocalSystem) -> httpx.Client:
    key = new_tenant(system, "images")["api_key"]
    return httpx.Client(base_url=system.api_url, timeout=30, headers=bearer(key))


@pytest.fixture
def tenant(system: LocalSystem) -> Iterator[httpx.Client]:
    """A fresh tenant per test, so what it lists is exactly what the test uploaded."""
    with _client_of_new_tenant(system) as client:
        yield client


def _upload(client: httpx.Client, data: bytes) -> str:
    response = client.post("/v1/images", content=data)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _image(client: httpx.Client, image_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/images/{image_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _wait_ready(client: httpx.Client, image_id: str) -> dict[str, Any]:
    body = wait_for(
        lambda: (b := _image(client, image_id))["status"] != "processing" and b,
        timeout_s=120,
        what=f"image {image_id} to settle",
    )
    assert body["status"] == "ready", body["stages"]
    return body


def _list_all(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = client.get(
            "/v1/images", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    return body


def _objects_naming(store: ObjectStore, image_id: str) -> list[str]:
    names = (o.object_name or "" for o in store.client.list_objects(store.bucket, recursive=True))
    return [name for name in names if image_id in name]


def _rows_of(database_url: str, image_id: str) -> dict[str, int]:
    tables = ("images", "image_stages", "renditions", "outbox", "dead_letters")
    counts = {}
    for table in tables:
        column = "id" if table == "images" else "image_id"
        rows = query(
            database_url,
            f"SELECT count(*) AS n FROM {table} WHERE {column} = $1",
            uuid.UUID(image_id),
        )
        counts[table] = rows[0]["n"]
    return counts


# --- listing -----------------------------------------------------------------------------


def test_pages_cover_every_image_exactly_once_while_uploads_arrive(tenant: httpx.Client) -> None:
    before = [_upload(tenant, _jpeg(1000 + i)) for i in range(7)]
    seen: list[dict[str, Any]] = []
    arriving: list[str] = []
    response = tenant.get("/v1/images", params={"limit": 3})
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        seen += page["items"]
        arriving.append(_upload(tenant, _jpeg(1100 + len(arriving))))  # mid-pagination
        if page["next_cursor"] is None:
            assert "link" not in response.headers
            break
        # The Link header is the next page's URL with the same cursor
        link = response.headers["link"]
        assert link.endswith('>; rel="next"') and f"cursor={page['next_cursor']}" in link
        response = tenant.get(link[1 : link.index(">")])

    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids)), "an image was listed twice"
    assert set(before) <= set(ids)
    assert set(ids) <= set(before) | set(arriving)
    # newest first, on (created_at, id)
    keys = [(datetime.fromisoformat(i["created_at"]), i["id"]) for i in seen]
    assert keys == sorted(keys, reverse=True)
    first = seen[-1]
    assert first["id"] == before[0] and first["url"] == f"/v1/images/{before[0]}"
    assert set(first["stages"]) == set(STAGES)
    # a fresh listing has the uploads that arrived meanwhile too
    assert {i["id"] for i in _list_all(tenant, limit=200)} == set(before) | set(arriving)


def test_status_and_creation_time_filters(tenant: httpx.Client, database_url: str) -> None:
    ids = [_upload(tenant, _jpeg(1200 + i)) for i in range(4)]
    for image_id in ids:
        _wait_ready(tenant, image_id)
    failed, running = uuid.UUID(ids[1]), uuid.UUID(ids[2])
    # Stage states set as the workers would leave them, so the filter sees all three.
    query(
        database_url,
        "UPDATE image_stages SET status = 'failed', error = 'test' "
        "WHERE image_id = $1 AND stage = 'hashing'",
        failed,
    )
    query(
        database_url,
        "UPDATE image_stages SET status = 'running' WHERE image_id = $1 AND stage = 'dedupe'",
        running,
    )
    try:
        by_status = {
            status: [i["id"] for i in _list_all(tenant, status=status, limit=2)]
            for status in ("ready", "failed", "processing")
        }
        assert by_status == {
            "ready": [ids[3], ids[0]],
            "failed": [ids[1]],
            "processing": [ids[2]],
        }
        for status, listed in by_status.items():  # the same status as the image view says
            assert all(_image(tenant, i)["status"] == status for i in listed)
    finally:
        query(database_url, "UPDATE image_stages SET status = 'done' WHERE image_id = $1", running)

    everything = _list_all(tenant)
    assert [i["id"] for i in everything] == ids[::-1]
    middle = everything[1]["created_at"]  # ids[2]
    before = _list_all(tenant, created_before=middle)
    after = _list_all(tenant, created_after=middle)
    assert [i["id"] for i in before] == [ids[1], ids[0]]
    assert [i["id"] for i in after] == [ids[3]]
    oldest, newest = everything[-1]["created_at"], everything[0]["created_at"]
    window = _list_all(tenant, created_after=oldest, created_before=newest)
    assert [i["id"] for i in window] == [ids[2], ids[1]]
    ready_in_window = _list_all(tenant, created_after=oldest, created_before=newest, status="ready")
    assert [i["id"] for i in ready_in_window] == [ids[2]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"status": "done"},
        {"created_after": "yesterday"},
        {"created_before": "2026-01-01T00:00:00"},  # RFC 3339 needs an offset
    ],
)
def test_bad_listing_parameters_are_422_problems(api: httpx.Client, params: dict) -> None:
    _problem(api.get("/v1/images", params=params), 422, "invalid-request")


def test_garbled_tampered_and_foreign_cursors_are_400(
    system: LocalSystem, tenant: httpx.Client
) -> None:
    for i in range(3):
        _upload(tenant, _jpeg(1300 + i))
    cursor = tenant.get("/v1/images", params={"limit": 1}).json()["next_cursor"]
    assert cursor
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data["p"][1] = str(uuid.uuid4())
    tampered = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    for bad in ("not base64 at all!", cursor[:-3], "e30", tampered):
        _problem(tenant.get("/v1/images", params={"cursor": bad}), 400, "bad-cursor")
    with _client_of_new_tenant(system) as other:
        _problem(other.get("/v1/images", params={"cursor": cursor}), 400, "bad-cursor")
    assert tenant.get("/v1/images", params={"cursor": cursor}).status_code == 200


def test_another_tenants_images_are_never_listed(system: LocalSystem, tenant: httpx.Client) -> None:
    mine = {_upload(tenant, _jpeg(1400 + i)) for i in range(2)}
    with _client_of_new_tenant(system) as other:
        theirs = {_upload(other, _jpeg(1410 + i)) for i in range(2)}
        assert {i["id"] for i in _list_all(other)} == theirs
    assert {i["id"] for i in _list_all(tenant)} == mine


# --- delete ------------------------------------------------------------------------------


def test_delete_removes_rows_and_objects_and_answers_404_after(
    system: LocalSystem, tenant: httpx.Client, store: ObjectStore, database_url: str
) -> None:
    data = _jpeg(1500)
    image_id = _upload(tenant, data)
    body = _wait_ready(tenant, image_id)
    assert len(body["renditions"]) == 3 and _objects_naming(store, image_id)
    original_key = query(
        database_url, "SELECT object_key FROM images WHERE id = $1", uuid.UUID(image_id)
    )[0]["object_key"]
    assert store.exists(original_key)

    with _client_of_new_tenant(system) as other:
        _problem(other.delete(f"/v1/images/{image_id}"), 404, "image-not-found")
    assert tenant.get(f"/v1/images/{image_id}").status_code == 200

    response = tenant.delete(f"/v1/images/{image_id}")
    assert response.status_code == 204 and response.content == b""
    assert not store.exists(original_key)
    assert _objects_naming(store, image_id) == []
    assert set(_rows_of(database_url, image_id).values()) == {0}
    _problem(tenant.get(f"/v1/images/{image_id}"), 404, "image-not-found")
    _problem(tenant.delete(f"/v1/images/{image_id}"), 404, "image-not-found")
    _problem(tenant.delete("/v1/images/not-a-uuid"), 404, "image-not-found")
    # The same bytes can be uploaded again afterwards: a new image, stored anew.
    again = _upload(tenant, data)
    assert again != image_id and store.exists(original_key)


def _pool_children(system: LocalSystem, name: str) -> list[psutil.Process]:
    pid = system.service(name).child.pid
    assert pid is not None
    return psutil.Process(pid).children()


def _log_of(system: LocalSystem, name: str) -> str:
    return system.service(name).log_path.read_text(errors="replace")


def test_a_job_in_flight_when_its_image_is_deleted_finishes_quietly(
    system: LocalSystem, tenant: httpx.Client, store: ObjectStore, database_url: str
) -> None:
    """The thumbnailer holds the job (reading the original from a frozen S3) while the
    API deletes the image; once S3 answers again, the job must end skipped (no retry, no
    dead letter, no failure) and leave no object of the image behind."""
    s3_pid = system.stack.s3.child.pid
    assert s3_pid is not None
    system.stop_service("thumbnailer")
    deleting: threading.Thread | None = None
    deleted: list[httpx.Response] = []
    try:
        # Large enough that rendering takes a while once it has the bytes.
        image_id = _upload(tenant, encode(photo_like(3000, 2000, seed=1600), "PNG"))
        not_yet = tenant.get(f"/v1/images/{image_id}/thumbnails/300")
        assert _problem(not_yet, 404, "rendition-not-found")["available_sizes"] == []
        os.kill(s3_pid, signal.SIGSTOP)
        try:
            system.start_service("thumbnailer")
            wait_for(
                lambda: _image(tenant, image_id)["stages"]["thumbnails"]["status"] == "running",
                timeout_s=60,
                what="the thumbnailer to claim the job",
            )
            deleting = threading.Thread(
                target=lambda: deleted.append(tenant.delete(f"/v1/images/{image_id}"))
            )
            deleting.start()
            # The delete has marked the image (committed) and waits on S3 for the objects.
            wait_for(
                lambda: query(
                    database_url,
                    "SELECT 1 FROM images WHERE id = $1 AND deleting_since IS NOT NULL",
                    uuid.UUID(image_id),
                ),
                timeout_s=30,
                what="the delete to mark the image",
            )
        finally:
            os.kill(s3_pid, signal.SIGCONT)
        deleting.join(timeout=60)
        assert deleted and deleted[0].status_code == 204, deleted
    finally:
        os.kill(s3_pid, signal.SIGCONT)
        if not system.service("thumbnailer").is_running():
            system.start_service("thumbnailer")

    wait_for(
        lambda: f"thumbnails skipped for {image_id}" in _log_of(system, "thumbnailer"),
        timeout_s=60,
        what="the thumbnail job to end as skipped",
    )
    skip = [line for line in _log_of(system, "thumbnailer").splitlines() if "skipping" in line]
    print("\n" + "\n".join(line for line in skip if image_id in line))  # which path it took
    for worker in WORKERS:
        lines = [line for line in _log_of(system, worker).splitlines() if image_id in line]
        noisy = ("retrying", "dead-letter", "gave up", f"failed for {image_id}")
        assert not [line for line in lines if any(word in line for word in noisy)], lines
    assert _objects_naming(store, image_id) == []
    assert set(_rows_of(database_url, image_id).values()) == {0}


def test_the_thumbnailer_removes_renditions_it_stored_for_an_image_deleted_meanwhile(
    tenant: httpx.Client, store: ObjectStore, database_url: str, system: LocalSystem
) -> None:
    """The task's glue, run in this process against the real stack: the image row is gone
    by the time it records its renditions (the original is still there to render)."""
    from imgflow_contracts.payloads import ImageJob
    from imgflow_contracts.queues import Stage
    from imgflow_contracts.settings import WorkerSettings
    from imgflow_runtime.stage_runner import ImageGone, WorkerContext
    from imgflow_thumbnailer.worker import make_thumbnails

    image_id = _upload(tenant, _jpeg(1700))
    _wait_ready(tenant, image_id)
    key = query(database_url, "SELECT object_key FROM images WHERE id = $1", uuid.UUID(image_id))[
        0
    ]["object_key"]
    job = ImageJob(image_id=uuid.UUID(image_id), stage=Stage.THUMBNAILS, object_key=key)
    # The image row goes, its objects stay: as if the delete committed mid-render.
    query(database_url, "DELETE FROM images WHERE id = $1", uuid.UUID(image_id))
    store.delete_prefix(f"renditions/{image_id}/")
    values = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in system.env.items()}
    settings = WorkerSettings.model_validate(values)
    ctx = WorkerContext(settings, ObjectStore.from_settings(settings))
    try:
        with pytest.raises(ImageGone):
            make_thumbnails(job, ctx)
        assert _objects_naming(store, image_id) == []
    finally:
        store.delete(key)


# --- reprocess ---------------------------------------------------------------------------


def test_a_reprocessed_stage_runs_again_and_ends_with_the_same_renditions(
    tenant: httpx.Client, database_url: str
) -> None:
    image_id = _upload(tenant, _jpeg(1800))
    before = _wait_ready(tenant, image_id)

    response = tenant.post(f"/v1/images/{image_id}/reprocess", json={"stages": ["thumbnails"]})
    assert response.status_code == 202, response.text
    assert response.json() == {"id": image_id, "stages": {"thumbnails": "pending"}}
    assert response.headers["location"] == f"/v1/images/{image_id}"

    finished_before = datetime.fromisoformat(before["stages"]["thumbnails"]["finished_at"])
    after = wait_for(
        lambda: (
            (b := _image(tenant, image_id))["stages"]["thumbnails"]["finished_at"]
            and datetime.fromisoformat(b["stages"]["thumbnails"]["finished_at"]) > finished_before
            and b["status"] != "processing"
            and b
        ),
        timeout_s=60,
        what="the thumbnails stage to run again",
    )
    stage = after["stages"]["thumbnails"]
    assert stage["status"] == "done" and stage["attempts"] == 1 and stage["error"] is None
    assert datetime.fromisoformat(stage["queued_at"]) > finished_before
    assert after["renditions"] == before["renditions"]
    for other in ("hashing", "dedupe"):  # untouched
        assert after["stages"][other] == before["stages"][other]

    # Omitted body: every stage.
    response = tenant.post(f"/v1/images/{image_id}/reprocess")
    assert response.status_code == 202
    assert response.json()["stages"] == dict.fromkeys(STAGES, "pending")
    again = wait_for(
        lambda: (
            (b := _image(tenant, image_id))["status"] == "ready"
            and all(
                datetime.fromisoformat(b["stages"][s]["queued_at"]) > finished_before
                for s in STAGES
            )
            and b
        ),
        timeout_s=90,
        what="every stage to run again",
    )
    assert again["renditions"] == before["renditions"] and again["phash"] == before["phash"]


def test_reprocess_refuses_running_stages_unknown_stages_and_foreign_images(
    system: LocalSystem, tenant: httpx.Client, database_url: str
) -> None:
    image_id = _upload(tenant, _jpeg(1900))
    _wait_ready(tenant, image_id)
    path = f"/v1/images/{image_id}/reprocess"

    for body in ({"stages": ["resize"]}, {"stages": "thumbnails"}, {"stage": ["hashing"]}):
        _problem(tenant.post(path, json=body), 422, "invalid-request")
    with _client_of_new_tenant(system) as other:
        _problem(other.post(path, json={}), 404, "image-not-found")

    # As if a worker held it right now.
    query(
        database_url,
        "UPDATE image_stages SET status = 'running' WHERE image_id = $1 AND stage = 'hashing'",
        uuid.UUID(image_id),
    )
    try:
        refused = _problem(
            tenant.post(path, json={"stages": ["thumbnails", "hashing"]}), 409, "stage-running"
        )
        assert refused["stages"] == ["hashing"]
        # Nothing was reset or enqueued.
        assert _image(tenant, image_id)["stages"]["thumbnails"]["status"] == "done"
        assert _rows_of(database_url, image_id)["outbox"] == 0
    finally:
        query(
            database_url,
            "UPDATE image_stages SET status = 'done' WHERE image_id = $1 AND stage = 'hashing'",
            uuid.UUID(image_id),
        )


# --- downloads ---------------------------------------------------------------------------


def test_the_original_streams_with_etag_caching_and_304(
    system: LocalSystem, tenant: httpx.Client
) -> None:
    data = _jpeg(2000, (640, 480))
    image_id = _upload(tenant, data)
    view = _image(tenant, image_id)
    assert view["original_url"] == f"/v1/images/{image_id}/original"

    response = tenant.get(view["original_url"])
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["etag"] == f'"{view["sha256"]}"'
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-length"] == str(len(data))
    cache = response.headers["cache-control"]
    assert cache.startswith("private, max-age=") and "immutable" in cache

    etag = response.headers["etag"]
    for if_none_match in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        cached = tenant.get(view["original_url"], headers={"If-None-Match": if_none_match})
        assert cached.status_code == 304 and cached.content == b""
        assert cached.headers["etag"] == etag
    assert tenant.get(view["original_url"], headers={"If-None-Match": '"nope"'}).content == data

    with _client_of_new_tenant(system) as other:
        _problem(other.get(view["original_url"]), 404, "image-not-found")
    _problem(tenant.get(f"/v1/images/{uuid.uuid4()}/original"), 404, "image-not-found")


def test_renditions_stream_as_stored_with_etag_and_304(
    tenant: httpx.Client, store: ObjectStore
) -> None:
    image_id = _upload(tenant, _jpeg(2100, (800, 600)))
    view = _wait_ready(tenant, image_id)
    assert [r["url"] for r in view["renditions"]] == [
        f"/v1/images/{image_id}/thumbnails/{r['size']}" for r in view["renditions"]
    ]
    for rendition in view["renditions"]:
        stored = store.get_bytes(rendition["object_key"])
        response = tenant.get(rendition["url"])
        assert response.status_code == 200
        assert response.content == stored
        assert response.headers["content-type"] == "image/webp"
        assert response.headers["content-length"] == str(len(stored))
        assert response.headers["cache-control"].startswith("private, max-age=")
        etag = response.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')
        again = tenant.get(rendition["url"], headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag

    sizes = [r["size"] for r in view["renditions"]]
    for unknown in ("301", "abc", "-1", "9" * 20):
        missing = _problem(
            tenant.get(f"/v1/images/{image_id}/thumbnails/{unknown}"), 404, "rendition-not-found"
        )
        assert missing["available_sizes"] == sizes
    _problem(tenant.get(f"/v1/images/{uuid.uuid4()}/thumbnails/300"), 404, "image-not-found")


def test_a_client_that_hangs_up_mid_download_leaves_the_api_serving(
    system: LocalSystem, tenant: httpx.Client
) -> None:
    data = encode(photo_like(2400, 1800, seed=2050), "PNG")  # several MB: many chunks
    image_id = _upload(tenant, data)
    log_before = len(_log_of(system, "api"))
    for _ in range(20):  # more than the API's pooled S3 connections (16)
        with tenant.stream("GET", f"/v1/images/{image_id}/original") as response:
            assert response.status_code == 200
            assert int(response.headers["content-length"]) == len(data)
            first = next(response.iter_bytes())
            assert data.startswith(first)
    assert tenant.get(f"/v1/images/{image_id}/original").content == data
    later = _log_of(system, "api")[log_before:]
    assert "unhandled error" not in later and "Traceback" not in later


async def _get_through_a_redirecting_api(
    settings: ApiSettings, headers: dict[str, str], paths: list[str]
) -> list[httpx.Response]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.test", headers=headers
        ) as client:
            return [await client.get(path) for path in paths]


def test_redirect_mode_answers_307_to_a_presigned_url_that_serves_the_bytes(
    system: LocalSystem, tenant: httpx.Client, store: ObjectStore
) -> None:
    data = _jpeg(2200, (640, 480))
    image_id = _upload(tenant, data)
    view = _wait_ready(tenant, image_id)
    values = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in system.env.items()}
    host, port = values["s3_endpoint"].rsplit(":", 1)
    assert host == "127.0.0.1"
    settings = ApiSettings.model_validate(
        {
            **values,
            "api_downloads": "redirect",
            "api_download_url_ttl_s": 120,
            # Clients reach S3 by another name than the API does: URLs are signed for it.
            "s3_public_endpoint": f"http://localhost:{port}",
        }
    )
    rendition = view["renditions"][0]
    original, thumbnail, cached = asyncio.run(
        _get_through_a_redirecting_api(
            settings,
            dict(tenant.headers),
            [view["original_url"], rendition["url"], view["original_url"]],
        )
    )
    for response in (original, thumbnail):
        assert response.status_code == 307, response.text
        assert response.headers["location"].startswith(f"http://localhost:{port}/")
        assert "X-Amz-Expires=120" in response.headers["location"]
        assert response.headers["cache-control"] == "no-store"
    with httpx.Client(timeout=30) as anonymous:  # no API key: the URL is the credential
        assert anonymous.get(original.headers["location"]).content == data
        fetched = anonymous.get(thumbnail.headers["location"])
        assert fetched.status_code == 200
        assert fetched.content == store.get_bytes(rendition["object_key"])
        tampered = original.headers["location"].replace("X-Amz-Expires=120", "X-Amz-Expires=999")
        assert anonymous.get(tampered).status_code == 403
    assert cached.status_code == 307

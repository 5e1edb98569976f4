"""Client and AsyncClient against the real API, workers, PostgreSQL and S3."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image as PilImage

from imgflow_client import (
    ApiError,
    AsyncClient,
    Client,
    ConnectionFailed,
    NotFound,
    RetryPolicy,
    Unauthorized,
)
from imgflow_client.files import derive_idempotency_key, sha256_bytes
from tests.support import encode, photo_like

from .conftest import Tenant, posts, truncated_jpeg


def _jpeg(seed: int, size: tuple[int, int] = (200, 150)) -> bytes:
    return encode(photo_like(*size, seed=seed), "JPEG", quality=85)


def test_an_upload_is_keyed_by_its_bytes_so_a_repeat_makes_no_second_image(
    tenant: Tenant,
) -> None:
    data = _jpeg(1)
    with Client(tenant.url, tenant.api_key) as client:
        first = client.upload(data)
        again = client.upload(data)

        assert first.created and first.sha256 == sha256_bytes(data)
        assert again.id == first.id
        assert tenant.image_count() == 1
        # The key is the digest's: another client sending the same file gets that image.
        with tenant.http() as http:
            answer = http.post(
                "/v1/images",
                content=data,
                headers={"Idempotency-Key": derive_idempotency_key(first.sha256)},
            )
        assert answer.json()["id"] == str(first.id)


def test_a_file_path_uploads_and_downloads_back_byte_for_byte(
    tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg(2, (640, 480)))
    with Client(tenant.url, tenant.api_key) as client:
        accepted = client.upload(path)
        events = list(client.image_events(accepted.id))
        image = client.get_image(accepted.id)
        original = client.original(accepted.id)
        client.download_thumbnail(accepted.id, 300, tmp_path / "small.webp")

    assert events[0].event == "state" and events[-1].type == "image.ready"
    assert image.status == "ready" and (image.width, image.height) == (640, 480)
    assert original == path.read_bytes()
    with PilImage.open(tmp_path / "small.webp") as small:
        assert max(small.size) == 300


def test_usage_counts_what_the_tenant_stored(tenant: Tenant) -> None:
    data = _jpeg(7)
    with Client(tenant.url, tenant.api_key) as client:
        before = client.usage()
        client.upload(data)
        after = client.usage()
    assert (before.images, before.bytes) == (0, 0)
    assert (after.images, after.bytes) == (1, len(data))
    assert after.limits.max_images is None  # a new tenant has no quota unless one is set


def test_problems_become_exceptions_with_code_title_and_detail(tenant: Tenant) -> None:
    with Client(tenant.url, tenant.api_key) as client:
        with pytest.raises(ApiError) as truncated:
            client.upload(truncated_jpeg())
        with pytest.raises(NotFound) as missing:
            client.get_image("00000000-0000-0000-0000-000000000001")
        accepted = client.upload(_jpeg(3))
        with pytest.raises(NotFound) as no_size:
            client.thumbnail(accepted.id, 123)

    assert (truncated.value.status, truncated.value.code) == (422, "truncated-image")
    assert truncated.value.title and truncated.value.detail
    assert missing.value.code == "image-not-found"
    assert no_size.value.code == "rendition-not-found"
    assert "available_sizes" in no_size.value.problem
    assert tenant.image_count() == 1  # the refused upload left nothing


def test_a_wrong_key_is_unauthorized_and_a_closed_port_is_unreachable(tenant: Tenant) -> None:
    with Client(tenant.url, "imgf_not-a-key") as client, pytest.raises(Unauthorized) as refused:
        client.get_image("00000000-0000-0000-0000-000000000001")
    fast = RetryPolicy(attempts=2, base_s=0.01)
    with (
        Client("http://127.0.0.1:9", tenant.api_key, retry=fast) as client,
        pytest.raises(ConnectionFailed),
    ):
        client.list_images()

    assert refused.value.code == "unauthorized"


def test_the_listing_iterates_every_keyset_page_once(tenant: Tenant) -> None:
    with Client(tenant.url, tenant.api_key) as client:
        uploaded = [client.upload(_jpeg(10 + i, (64, 48))).id for i in range(5)]

        listed = [image.id for image in client.images(page_size=2)]
        one_page = client.list_images(limit=2)

    assert listed == list(reversed(uploaded))  # newest first, no repeats
    assert len(one_page.items) == 2 and one_page.next_cursor


def test_delete_reprocess_and_duplicates(tenant: Tenant) -> None:
    picture = photo_like(320, 240, seed=21)
    with Client(tenant.url, tenant.api_key) as client:
        a = client.upload(encode(picture, "JPEG", quality=90))
        b = client.upload(encode(picture, "PNG"))  # the same picture, other bytes
        for image in (a, b):
            list(client.image_events(image.id))

        found = client.duplicates(b.id)
        again = client.reprocess(a.id, ["hashing"])
        list(client.image_events(a.id))
        client.delete_image(a.id)
        with pytest.raises(NotFound):
            client.get_image(a.id)

    assert [d.id for d in found.duplicates] == [a.id]
    assert set(found.group) == {a.id, b.id}
    assert again.stages == {"hashing": "pending"}


def test_the_tenant_stream_resumes_after_the_last_event_id(tenant: Tenant) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        async with AsyncClient(tenant.url, tenant.api_key) as client:
            stream = client.events()
            opened = await anext(stream)
            accepted = await client.upload(_jpeg(30, (64, 48)))
            seen: list[str] = []
            resume_from = None
            async for event in stream:
                seen.append(event.type)
                if event.type == "stage.running" and resume_from is None:
                    resume_from = event.id  # the first one
                if event.type == "image.ready" and event.image_id == str(accepted.id):
                    break
            await stream.aclose()
            replayed: list[str] = []
            async for event in client.events(last_event_id=resume_from):
                if event.event != "open":
                    replayed.append(event.type)
                if event.type == "image.ready":
                    break
            assert opened.event == "open"
            return seen, replayed

    seen, replayed = asyncio.run(scenario())

    assert seen[0] == "image.created" and seen[-1] == "image.ready"
    first_running = seen.index("stage.running")
    assert replayed == seen[first_running + 1 :]


def test_webhooks_are_created_listed_and_deleted(tenant: Tenant) -> None:
    with Client(tenant.url, tenant.api_key) as client:
        created = client.create_webhook("http://127.0.0.1:9/hook", ["image.ready"])
        listed = client.webhooks()
        deliveries = client.deliveries(created.id)
        client.delete_webhook(created.id)
        after = client.webhooks()

    assert created.secret.startswith("whsec_")
    assert [w.id for w in listed] == [created.id]
    assert deliveries == []
    assert after == []


def test_a_presigned_upload_goes_straight_to_storage(tenant: Tenant) -> None:
    data = encode(photo_like(800, 600, seed=40), "PNG")
    sent: list[int] = []
    before = posts(tenant.url)
    with Client(tenant.url, tenant.api_key, presigned_above=1024) as client:
        accepted = client.upload(data, on_progress=sent.append)
        again = client.upload(data)
        original = client.original(accepted.id)

    assert accepted.created and again.id == accepted.id
    assert sum(sent) == len(data)
    assert original == data
    assert posts(tenant.url) == before  # no byte went through POST /v1/images


def test_async_client_uploads_in_parallel(tenant: Tenant) -> None:
    bodies = [_jpeg(50 + i, (64, 48)) for i in range(6)]

    async def upload_all() -> list[str]:
        async with AsyncClient(tenant.url, tenant.api_key) as client:
            answers = await asyncio.gather(*(client.upload(b) for b in bodies))
            return [str(a.id) for a in answers]

    ids = asyncio.run(upload_all())

    assert len(set(ids)) == 6 and tenant.image_count() == 6


def test_downloads_to_a_file_object(tenant: Tenant) -> None:
    data = _jpeg(60)
    with Client(tenant.url, tenant.api_key) as client:
        accepted = client.upload(data)
        sink = io.BytesIO()
        written = client.download_original(accepted.id, sink)

    assert written == len(data) and sink.getvalue() == data

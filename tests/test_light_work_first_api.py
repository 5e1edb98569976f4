"""A tenant with a backlog yields to a light tenant's work in flight, through the running
API (tenants/light_first.py): its uploads beyond its share wait, unrefused, until one of
its own ends; the light tenant's, and those of a tenant without a backlog, do not wait.

On a system of this module's own: real PostgreSQL, Valkey, SeaweedFS, API and workers,
the express workers included; the thumbnailer stopped so the importer's jobs stay queued,
and both dedupers so the light tenant's image stays in flight until a test lets it end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from imgflow_localstack.system import LocalSystem
from tests.stack import running_system
from tests.support import (
    bearer,
    encode,
    new_tenant,
    photo_like,
    slow_body,
    upload_photos,
    wait_for,
)

SHARE = 2
SETTINGS = {
    "OUTBOX_BROKER_TARGET_DEPTH": "2",
    "OUTBOX_EXPRESS_MAX_WAITING": "4",
    "OUTBOX_EXPRESS_QUEUE_DEPTH": "1",
    "QUEUE_DEPTH_REFRESH_S": "0.05",
    "TENANT_LIGHT_WORK_FIRST": "true",
    "TENANT_LIGHT_WORK_SHARE": str(SHARE),
    # the light work stays "in flight" until its image is ready, not for a window
    "TENANT_LIGHT_WORK_WINDOW_S": "120",
}
BACKLOG = 8


@pytest.fixture(scope="module")
def system() -> Iterator[LocalSystem]:
    with running_system("imgflow-light-first-", SETTINGS) as running:
        yield running


def _yielded(system: LocalSystem) -> float:
    text = httpx.get(f"{system.api_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "imgflow_uploads_yielded":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError("imgflow_uploads_yielded_total is not served")


def _usage(system: LocalSystem, tenant: dict[str, Any]) -> dict[str, Any]:
    response = httpx.get(
        f"{system.api_url}/v1/usage", headers=bearer(tenant["api_key"]), timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _image(system: LocalSystem, tenant: dict[str, Any], image_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{system.api_url}/v1/images/{image_id}", headers=bearer(tenant["api_key"]), timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _upload(system: LocalSystem, tenant: dict[str, Any], content: Any) -> httpx.Response:
    with httpx.Client(base_url=system.api_url, timeout=60, headers=bearer(tenant["api_key"])) as c:
        return c.post("/v1/images", content=content, params={"bulk": "true"})


DEDUPERS = ("deduper", "deduper-express")


@contextlib.contextmanager
def _light_work_in_flight(
    system: LocalSystem, importer: dict[str, Any], light: dict[str, Any]
) -> Iterator[str]:
    """The importer with a backlog, and the light tenant's image in flight: sent by the
    express lane (its thumbnails done by the express worker), not ready (no deduper runs).
    Yields the light image's id; everything runs again after the block."""
    system.stop_service("thumbnailer")
    for name in DEDUPERS:
        system.stop_service(name)
    try:
        # The importer's backlog: its jobs wait in the outbox behind the broker's target.
        upload_photos(system.api_url, importer, range(0, BACKLOG), bulk=True)
        wait_for(lambda: _usage(system, importer)["queued_jobs"]["bulk"] > 4, what="the backlog")
        [fresh] = upload_photos(system.api_url, light, range(100, 101))
        wait_for(
            lambda: _image(system, light, fresh)["stages"]["thumbnails"]["status"] == "done",
            what="the light image's thumbnails, by the express lane",
        )
        yield fresh
    finally:
        for name in ("thumbnailer", *DEDUPERS):
            system.start_service(name)


def test_a_backlogs_uploads_beyond_its_share_wait_for_its_own_while_light_work_runs(
    system: LocalSystem,
) -> None:
    importer = new_tenant(system, "importer")
    light = new_tenant(system, "light")
    releases = [threading.Event(), threading.Event()]
    slow = [
        slow_body(encode(photo_like(64, 48, seed), "JPEG"), release)
        for seed, release in zip((900, 901), releases, strict=True)
    ]
    pool = ThreadPoolExecutor(4)
    try:
        with _light_work_in_flight(system, importer, light):
            yielded = _yielded(system)
            # The importer's share of uploads in progress...
            held: list[Future[httpx.Response]] = [
                pool.submit(_upload, system, importer, body) for body in slow
            ]
            wait_for(lambda: _usage(system, importer)["uploads_in_progress"] == SHARE, what="share")
            # ...so its next one waits, neither refused nor run.
            waiting = pool.submit(
                _upload, system, importer, encode(photo_like(64, 48, 902), "JPEG")
            )
            wait_for(lambda: _yielded(system) == yielded + 1, what="the upload to wait")
            assert not waiting.done()
            assert _usage(system, importer)["uploads_in_progress"] == SHARE
            # Meanwhile the light tenant's uploads go straight through.
            assert len(upload_photos(system.api_url, light, range(101, 104))) == 3
            assert not waiting.done()
            # One of the importer's own ends: the waiting one takes its place.
            releases[0].set()
            assert held[0].result(60).status_code == 201
            assert waiting.result(60).status_code == 201
            assert _yielded(system) == yielded + 1
            releases[1].set()
            assert held[1].result(60).status_code == 201
    finally:
        for release in releases:
            release.set()
        pool.shutdown(wait=True)


def test_a_waiting_upload_goes_as_soon_as_the_light_image_is_ready(system: LocalSystem) -> None:
    importer = new_tenant(system, "importer")
    light = new_tenant(system, "light")
    releases = [threading.Event() for _ in range(SHARE)]
    pool = ThreadPoolExecutor(SHARE + 1)
    try:
        with _light_work_in_flight(system, importer, light) as fresh:
            yielded = _yielded(system)
            held = [
                pool.submit(
                    _upload,
                    system,
                    importer,
                    # held through three workers' restarts: a slow machine's minute
                    slow_body(encode(photo_like(64, 48, 910 + i), "JPEG"), r, timeout_s=300),
                )
                for i, r in enumerate(releases)
            ]
            wait_for(lambda: _usage(system, importer)["uploads_in_progress"] == SHARE, what="share")
            waiting = pool.submit(
                _upload, system, importer, encode(photo_like(64, 48, 920), "JPEG")
            )
            wait_for(lambda: _yielded(system) == yielded + 1, what="the upload to wait")
        # The dedupers run again: the light image gets ready, long before the window ends,
        # and the waiting upload goes while the importer's own two are still in progress.
        assert waiting.result(60).status_code == 201
        assert _image(system, light, fresh)["status"] == "ready"
        assert not any(h.done() for h in held)
    finally:
        for release in releases:
            release.set()
        pool.shutdown(wait=True)

"""Which failures are final: an error the image's bytes cause fails the stage on its first
attempt, with the reason in words; an outage (here S3's) is retried until it passes."""

from __future__ import annotations

import httpx

from imgflow_localstack.system import LocalSystem
from tests.faults.support import image, upload
from tests.format_zoo import broken_pixels, text_bomb
from tests.support import every_stage_finished, wait_for

WORKERS = ("thumbnailer", "hasher", "deduper")


def _settled(api: httpx.Client, image_id: str) -> dict:
    return wait_for(
        lambda: (body := image(api, image_id)) and every_stage_finished(body) and body,
        timeout_s=90,
        what=f"image {image_id} to settle",
    )


def test_an_undecodable_image_fails_at_once_in_every_worker(
    healthy: LocalSystem, fault_api: httpx.Client
) -> None:
    for data, words in [
        (broken_pixels(), "cannot decode the image"),
        (text_bomb(before_pixels=False), "larger than allowed"),
    ]:
        response = fault_api.post("/v1/images", content=data)
        assert response.status_code == 201, response.text  # sound framing: the door passes it

        body = _settled(fault_api, response.json()["id"])

        assert body["status"] == "failed"
        for stage in ("thumbnails", "hashing"):
            state = body["stages"][stage]
            assert (state["status"], state["attempts"]) == ("failed", 1), (stage, state)
            assert words in state["error"], state["error"]
            assert "gave up" not in state["error"]


def test_an_s3_outage_is_retried_not_final(healthy: LocalSystem, fault_api: httpx.Client) -> None:
    system = healthy
    for name in WORKERS:
        system.stop_service(name)
    image_id = upload(fault_api, seed=2401)
    system.stack.s3.stop()
    try:
        system.start_service("thumbnailer")
        wait_for(
            lambda: image(fault_api, image_id)["stages"]["thumbnails"]["attempts"] >= 3,
            timeout_s=60,
            what="the thumbnail job to fail against the stopped S3 and be tried again",
        )
        state = image(fault_api, image_id)["stages"]["thumbnails"]
        assert state["status"] != "failed", state
    finally:
        system.stack.s3.start()
        for name in WORKERS:
            if not system.service(name).is_running():
                system.start_service(name)
    # That the retried job then completes is test_faults.test_jobs_retry_through_an_s3_outage's.

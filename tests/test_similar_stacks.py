"""Similar stacks through the whole system: a photo, a re-encoded copy of it, and a burst
frame of the same scene (tools/dedupe_eval's: the camera moved by 40 % of the frame and
rolled, the light and the noise changed), uploaded through the API to a tenant of its
own. The copy joins the photo's duplicate group; the burst frame is another picture, so
it joins their similar stack instead, which is served, names its evidence and a pick,
and resolves without trashing anything unless asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import skimage.data
from PIL import Image

from imgflow_deduper.overlap import MOTION_MIN_IOU
from imgflow_deduper.settings import DedupeSettings
from imgflow_localstack.system import LocalSystem
from tests.support import bearer, new_tenant, query, wait_for
from tests.test_events import Receiver, receiver  # noqa: F401
from tools.dedupe_eval.dataset import HALVES, _burst_frame, encode_jpeg
from tools.dedupe_eval.edits import crop
from tools.dedupe_eval.sources import Photo, bundled_photos


@dataclass(frozen=True)
class Scene:
    client: httpx.Client
    ids: dict[str, str]  # label -> image id


def _dedupe_done(client: httpx.Client, ids: list[str]) -> bool:
    for image_id in ids:
        stage = client.get(f"/v1/images/{image_id}").json()["stages"]["dedupe"]
        if stage["status"] not in ("done", "failed"):
            return False
        assert stage["status"] == "done", stage
    return True


def _settle(client: httpx.Client, database_url: str, ids: list[str]) -> None:
    """Every check done, and again for an image whose pHash came after its check."""
    wait_for(lambda: _dedupe_done(client, ids), timeout_s=300, what="every dedupe stage")
    late = query(
        database_url,
        "SELECT image_id::text FROM duplicate_checks WHERE phash_pending AND image_id = ANY($1)",
        ids,
    )
    for row in late:
        response = client.post(
            f"/v1/images/{row['image_id']}/reprocess", json={"stages": ["dedupe"]}
        )
        assert response.status_code == 202, response.text
    wait_for(lambda: _dedupe_done(client, ids), timeout_s=300, what="the rechecks")


def _uploaded(client: httpx.Client, database_url: str, images: dict[str, bytes]) -> dict[str, str]:
    """Each image uploaded in order, every check settled: label -> image id."""
    ids = {}
    for label, data in images.items():
        response = client.post("/v1/images", content=data)
        assert response.status_code == 201, response.text
        ids[label] = response.json()["id"]
    _settle(client, database_url, list(ids.values()))
    return ids


@pytest.fixture(scope="module")
def scene(system: LocalSystem, database_url: str) -> Iterator[Scene]:
    photo = Photo("skimage/astronaut.png", Image.fromarray(skimage.data.astronaut()))
    left = crop(photo.image, *HALVES["left"])
    images = {
        "photo": encode_jpeg(left),
        "copy": encode_jpeg(left, quality=70),  # re-encoded: a duplicate
        "burst": encode_jpeg(_burst_frame(photo)),  # another frame: similar
    }
    tenant = new_tenant(system, "stacks")
    with httpx.Client(
        base_url=system.api_url, headers=bearer(tenant["api_key"]), timeout=60
    ) as client:
        ids = _uploaded(client, database_url, images)
        yield Scene(client, ids)


def _stacks(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/v1/similar-stacks")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _stack(scene: Scene) -> dict[str, Any]:
    [summary] = _stacks(scene.client)
    response = scene.client.get(summary["url"])
    assert response.status_code == 200, response.text
    return response.json()


def test_the_copy_is_a_duplicate_and_the_burst_frame_a_stack_member(scene: Scene) -> None:
    ids = scene.ids
    group = scene.client.get(f"/v1/images/{ids['photo']}/duplicates").json()
    assert set(group["group"]) == {ids["photo"], ids["copy"]}

    stack = _stack(scene)
    members = {m["id"]: m for m in stack["members"]}
    assert set(members) == set(ids.values())
    # a stack holds whole duplicate groups: the photo and its copy share one
    assert members[ids["photo"]]["duplicate_group_id"] == group["group_id"]
    assert members[ids["copy"]]["duplicate_group_id"] == group["group_id"]
    assert members[ids["burst"]]["duplicate_group_id"] is None
    assert all(m["sharpness"] > 0 for m in members.values())
    relations = {(frozenset((p["a"], p["b"])), p["relation"]) for p in stack["evidence"]}
    assert (frozenset((ids["photo"], ids["copy"])), "duplicate") in relations
    similar = [p for p in stack["evidence"] if p["relation"] == "similar"]
    assert similar and all(ids["burst"] in (p["a"], p["b"]) for p in similar)
    assert all(p["basis"] and p["inliers"] is not None for p in similar)
    # the copy's motions measured and under the bars; the frame shares too little to measure
    bars = DedupeSettings().geometry()
    assert bars is not None
    [copy] = [p for p in stack["evidence"] if {p["a"], p["b"]} == {ids["photo"], ids["copy"]}]
    assert 0 <= copy["motion"] < bars.duplicate_motion, copy
    assert 0 <= copy["second_motion"] < bars.duplicate_second_motion, copy
    assert all(p["iou"] < MOTION_MIN_IOU for p in similar)
    assert all(p["motion"] is None and p["second_motion"] is None for p in similar)
    assert stack["suggested_pick"]["id"] in members and stack["suggested_pick"]["reasons"]
    assert stack["resolution"] is None


def test_the_listing_names_the_details_pick(scene: Scene) -> None:
    [summary] = _stacks(scene.client)
    stack = _stack(scene)
    assert summary["size"] == 3 and summary["version"] == stack["version"]
    assert summary["suggested_pick"] == stack["suggested_pick"]


def test_every_member_image_names_its_stack(scene: Scene) -> None:
    stack = _stack(scene)
    for image_id in scene.ids.values():
        assert scene.client.get(f"/v1/images/{image_id}").json()["similar_stack"] == stack["id"]
        relations = scene.client.get(f"/v1/images/{image_id}/duplicates").json()
        assert relations["similar_stack"] == stack["id"]


def test_the_listing_filters_on_resolved(scene: Scene) -> None:
    [stack] = _stacks(scene.client)
    assert stack["resolution"] is None
    unresolved = scene.client.get("/v1/similar-stacks", params={"resolved": "false"})
    assert [s["id"] for s in unresolved.json()["items"]] == [stack["id"]]
    resolved = scene.client.get("/v1/similar-stacks", params={"resolved": "true"})
    assert resolved.json()["items"] == []
    bad = scene.client.get("/v1/similar-stacks", params={"resolved": "maybe"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def _resolve(scene: Scene, stack_id: str, body: dict[str, Any]) -> httpx.Response:
    return scene.client.post(f"/v1/similar-stacks/{stack_id}/resolve", json=body)


def _live(scene: Scene) -> set[str]:
    return {
        label
        for label, image_id in scene.ids.items()
        if scene.client.get(f"/v1/images/{image_id}").json()["trashed_at"] is None
    }


def test_resolving_keeps_a_pick_trashes_only_what_is_named_and_announces_it(
    scene: Scene,
    receiver: Receiver,  # noqa: F811
) -> None:
    hook = scene.client.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["similar_stack.*"]}
    )
    assert hook.status_code == 201, hook.text
    stack = _stack(scene)
    ids, version = scene.ids, stack["version"]

    stale = _resolve(scene, stack["id"], {"version": version + 1, "keep": ids["burst"]})
    assert stale.status_code == 409, stale.text
    assert stale.json()["type"].endswith(":stack-changed")
    assert stale.json()["current_version"] == version
    stranger = _resolve(scene, stack["id"], {"version": version, "trash": [stack["id"]]})
    assert stranger.status_code == 422 and stranger.json()["type"].endswith(":not-a-member")

    # keeping a pick trashes nothing: the other frame and the copy are photos too
    keep = {"version": version, "keep": ids["burst"]}
    kept = _resolve(scene, stack["id"], keep)
    assert kept.status_code == 200, kept.text
    assert kept.json() == {
        "stack_id": stack["id"],
        "version": version + 1,
        "kept": ids["burst"],
        "trashed": [],
        "dismissed": False,
    }
    assert _live(scene) == set(ids)
    assert _resolve(scene, stack["id"], keep).json() == kept.json()  # the same answer again
    listed = scene.client.get("/v1/similar-stacks", params={"resolved": "true"}).json()
    assert [s["id"] for s in listed["items"]] == [stack["id"]]
    assert scene.client.get("/v1/similar-stacks?resolved=false").json()["items"] == []
    assert _stack(scene)["resolution"]["kept"] == ids["burst"]
    # a decision on the version before it is refused: read it again
    late = _resolve(scene, stack["id"], {"version": version, "trash": [ids["copy"]]})
    assert late.status_code == 409 and late.json()["current_version"] == version + 1

    # an explicit trash: only the copy goes; the photo and the burst frame stay a stack
    trashed = _resolve(
        scene, stack["id"], {"version": version + 1, "keep": ids["photo"], "trash": [ids["copy"]]}
    )
    assert trashed.status_code == 200, trashed.text
    assert trashed.json()["trashed"] == [ids["copy"]]
    assert _live(scene) == {"photo", "burst"}
    after = _stack(scene)
    assert {m["id"] for m in after["members"]} == {ids["photo"], ids["burst"]}
    assert after["version"] == trashed.json()["version"]
    assert scene.client.get(f"/v1/images/{ids['copy']}").json()["similar_stack"] is None

    def delivered() -> set[str] | None:
        types = {json.loads(body)["type"] for _, body in receiver.requests}
        wanted = {"similar_stack.updated", "similar_stack.resolved"}
        return types if wanted <= types else None

    wait_for(delivered, timeout_s=60, what="the stack's webhooks")
    documents = [json.loads(body) for _, body in receiver.requests]
    resolved = [d["data"] for d in documents if d["type"] == "similar_stack.resolved"]
    assert {"stack_id": stack["id"], "version": version + 1, "status": "resolved"} in resolved

    seen = []
    with scene.client.stream("GET", "/v1/events", headers={"Last-Event-ID": "0"}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and "similar_stack." in line:
                seen.append(json.loads(line.removeprefix("data:")))
                if seen[-1]["type"] == "similar_stack.resolved":
                    break
    assert seen[0]["stack_id"] == stack["id"] and "image_id" not in seen[0]


def test_a_restored_image_rejoins_its_stack(scene: Scene) -> None:
    """The copy trashed above comes back: its check runs again and puts it back in the
    photo's group, and so in their stack (the same id)."""
    stack, copy = _stack(scene), scene.ids["copy"]
    assert copy not in {m["id"] for m in stack["members"]}
    restored = scene.client.post(f"/v1/images/{copy}/restore")
    assert restored.status_code == 200, restored.text
    wait_for(lambda: _dedupe_done(scene.client, [copy]), timeout_s=120, what="the recheck")
    back = _stack(scene)
    assert back["id"] == stack["id"] and back["version"] > stack["version"]
    assert {m["id"] for m in back["members"]} == set(scene.ids.values())
    assert scene.client.get(f"/v1/images/{copy}").json()["similar_stack"] == stack["id"]


def test_an_unknown_stack_is_a_problem(scene: Scene) -> None:
    for path in ("/v1/similar-stacks/nope", f"/v1/similar-stacks/{scene.ids['photo']}"):
        response = scene.client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith(":similar-stack-not-found")


def test_a_frame_sharing_a_noisy_strip_stacks_through_its_thumbnails(
    system: LocalSystem, database_url: str
) -> None:
    """The rocket's burst frame shares 60 % of its left half's width under a dark, noisy
    sky: ORB finds no fit (0 inliers), the CNN calls them no copies (0.78), but their
    thumbnails line up on the shared strip (stacks13), so the two stack."""
    photo = next(p for p in bundled_photos() if p.name == "skimage/rocket.jpg")
    images = {"left": encode_jpeg(crop(photo.image, *HALVES["left"])),
              "burst": encode_jpeg(_burst_frame(photo))}  # fmt: skip
    tenant = new_tenant(system, "aligned")
    with httpx.Client(
        base_url=system.api_url, headers=bearer(tenant["api_key"]), timeout=60
    ) as client:
        ids = _uploaded(client, database_url, images)
        stack = _stack(Scene(client, ids))
        assert {m["id"] for m in stack["members"]} == set(ids.values())
        [pair] = stack["evidence"]
        assert pair["relation"] == "similar"
        assert "the thumbnails align" in pair["basis"], pair
        assert pair["inliers"] < DedupeSettings().dedupe_geometry_min_inliers  # no keypoint fit

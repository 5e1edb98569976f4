"""Acting on duplicate groups through the API: resolve, 409 on a stale version, dismiss,
trash and restore, purge after the retention, and a resolve and a new copy's upload in
either order.

Each test makes its own group in a tenant of its own: a real photograph and edited
copies the CNN alone finds (so pHash timing cannot change the group).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import skimage.data
from PIL import Image, ImageEnhance

from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.webhooks.service import InvalidWebhook, check_events
from tests.stack import running_system
from tests.support import bearer, encode, new_tenant, query, wait_for
from tests.test_events import Receiver, receiver  # noqa: F401


def _copies(name: str = "chelsea") -> list[bytes]:
    photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    return [
        encode(photo, "JPEG", quality=92),
        encode(ImageEnhance.Brightness(photo).enhance(1.1), "JPEG", quality=70),
        encode(photo.reduce(2), "JPEG", quality=85),
    ]


@dataclass
class Group:
    client: httpx.Client
    ids: list[str]  # in upload order

    def view(self) -> dict[str, Any]:
        groups = self.client.get("/v1/duplicate-groups").json()["items"]
        assert len(groups) == 1, groups
        response = self.client.get(groups[0]["url"])
        assert response.status_code == 200, response.text
        return response.json()

    def resolve(self, group_id: str, **body: Any) -> httpx.Response:
        return self.client.post(f"/v1/duplicate-groups/{group_id}/resolve", json=body)


def upload(client: httpx.Client, data: bytes) -> str:
    response = client.post("/v1/images", content=data)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def deduped(client: httpx.Client, image_id: str) -> None:
    def done() -> bool:
        stages = client.get(f"/v1/images/{image_id}").json()["stages"]
        return all(s["status"] == "done" for s in stages.values())

    # every stage: the keeper's facts (pixels, EXIF) are the hasher's
    wait_for(done, timeout_s=180, what=f"the stages of {image_id}")


def group_id_of(client: httpx.Client, image_id: str) -> str | None:
    body = client.get(f"/v1/images/{image_id}/duplicates").json()
    return body["group_id"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def make_group(system: LocalSystem, copies: list[bytes] | None = None) -> Iterator[Group]:
    tenant = new_tenant(system, "resolve")
    with httpx.Client(
        base_url=system.api_url, headers=bearer(tenant["api_key"]), timeout=60
    ) as client:
        ids = [upload(client, data) for data in copies or _copies()]
        for image_id in ids:
            deduped(client, image_id)
        yield Group(client, ids)


@pytest.fixture
def group(system: LocalSystem) -> Iterator[Group]:
    with make_group(system) as made:
        yield made


def listed(client: httpx.Client) -> set[str]:
    return {i["id"] for i in client.get("/v1/images?limit=200").json()["items"]}


def test_trashing_a_copy_takes_it_out_of_listings_and_the_group_at_once(group: Group) -> None:
    view = group.view()
    assert {m["id"] for m in view["members"]} == set(group.ids)
    keeper = view["suggested_keeper"]["id"]
    assert keeper == group.ids[0]  # most pixels (the others: darker-encoded, half size)
    assert view["suggested_keeper"]["reasons"][0] == "most-pixels"
    trash = group.ids[2]

    response = group.resolve(view["id"], version=view["version"], keep=[keeper], trash=[trash])

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["trashed"] == [trash] and answer["version"] == view["version"] + 1
    assert set(answer["kept"]) == set(group.ids) - {trash}
    assert trash not in listed(group.client)
    assert group.client.get(f"/v1/images/{trash}").json()["trashed_at"] is not None
    assert group_id_of(group.client, trash) is None
    after = group.view()
    assert {m["id"] for m in after["members"]} == set(group.ids) - {trash}
    assert after["version"] == answer["version"]
    duplicates = group.client.get(f"/v1/images/{keeper}/duplicates").json()
    assert trash not in {d["id"] for d in duplicates["duplicates"]}

    # the same resolve again answers the same; another decision on that version is a 409
    again = group.resolve(view["id"], version=view["version"], keep=[keeper], trash=[trash])
    assert again.status_code == 200 and again.json() == answer
    other = group.resolve(view["id"], version=view["version"], trash=[group.ids[1]])
    assert other.status_code == 409 and other.json()["code"] == "group-changed"
    # with the version to read it at (the API's loop may have regrouped it since)
    assert other.json()["current_version"] >= answer["version"]


def test_a_member_whose_delete_was_cut_short_is_hidden_from_its_group(
    group: Group, database_url: str
) -> None:
    """A delete cut short (S3 or PostgreSQL lost midway) leaves the image marked, hidden
    until the sweeper finishes it: its group must not show or count it, nor list a group
    it leaves with fewer than two members (which would have no keeper to suggest)."""
    view = group.view()
    keeper, other, cut_short = group.ids[0], group.ids[1], group.ids[2]
    mark = "UPDATE images SET deleting_since = now() WHERE id = ANY($1::uuid[])"
    try:
        query(database_url, mark, [cut_short])
        [summary] = group.client.get("/v1/duplicate-groups").json()["items"]
        detail = group.client.get(summary["url"]).json()
        assert summary["size"] == len(detail["members"]) == len(view["members"]) - 1
        assert cut_short not in {m["id"] for m in detail["members"]}
        assert summary["suggested_keeper"] == detail["suggested_keeper"]
        assert detail["suggested_keeper"]["id"] == keeper

        query(database_url, mark, [other] + [i for i in group.ids[3:]])
        assert group.client.get("/v1/duplicate-groups").json()["items"] == []
        assert group.client.get(summary["url"]).status_code == 404
    finally:
        query(
            database_url,
            "UPDATE images SET deleting_since = NULL WHERE id = ANY($1::uuid[])",
            group.ids,
        )


def test_a_stale_version_is_a_409_and_changes_nothing(group: Group) -> None:
    view = group.view()
    response = group.resolve(view["id"], version=view["version"] + 1, trash=[group.ids[1]])
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "group-changed"
    assert response.json()["current_version"] == view["version"]
    assert group.ids[1] in listed(group.client)
    assert group.view() == view


def test_a_resolve_naming_a_stranger_is_a_422(group: Group, system: LocalSystem) -> None:
    view = group.view()
    response = group.resolve(view["id"], version=view["version"], trash=[view["id"]])
    assert response.status_code == 422 and response.json()["code"] == "not-a-member"
    both = group.resolve(
        view["id"], version=view["version"], keep=[group.ids[0]], trash=[group.ids[0]]
    )
    assert both.status_code == 422 and both.json()["code"] == "bad-resolution"


def test_dismissed_images_are_never_grouped_together_again(group: Group) -> None:
    view = group.view()
    response = group.resolve(view["id"], version=view["version"], dismiss=True)
    assert response.status_code == 200, response.text
    assert response.json()["version"] is None and response.json()["dismissed"]
    assert group.client.get(f"/v1/duplicate-groups/{view['id']}").status_code == 404
    assert group.client.get("/v1/duplicate-groups").json()["items"] == []

    # checked again: still duplicates (the pairs stay, as evidence), never one group
    again = group.client.post(f"/v1/images/{group.ids[1]}/reprocess", json={"stages": ["dedupe"]})
    assert again.status_code == 202, again.text
    deduped(group.client, group.ids[1])
    assert group.client.get("/v1/duplicate-groups").json()["items"] == []
    assert all(i in listed(group.client) for i in group.ids)  # nothing trashed


def test_a_restored_image_comes_back_whole_and_rejoins_its_group(group: Group) -> None:
    view = group.view()
    trash = group.ids[1]
    assert group.resolve(view["id"], version=view["version"], trash=[trash]).status_code == 200

    response = group.client.post(f"/v1/images/{trash}/restore")

    assert response.status_code == 200, response.text
    restored = response.json()
    assert restored["trashed_at"] is None and restored["renditions"]
    assert trash in listed(group.client)
    deduped(group.client, trash)  # checked again, through the outbox
    assert group_id_of(group.client, trash) == view["id"]
    assert {m["id"] for m in group.view()["members"]} == set(group.ids)
    # restoring an image that is not trashed changes nothing
    assert group.client.post(f"/v1/images/{trash}/restore").status_code == 200


def test_a_resolve_and_a_new_copy_in_either_order_leave_a_consistent_group(
    system: LocalSystem,
) -> None:
    """A resolve and a new copy's joining the same group, both orders driven in turn
    (left to a real race, the millisecond resolve always wins): a copy that joined first
    makes the resolve name a stale version (409, nothing trashed); a resolve that came
    first leaves the next copy joining what is left, never the trashed image."""
    photo = Image.fromarray(skimage.data.astronaut()).convert("RGB")
    first, second, third = _copies("astronaut")
    fourth = encode(ImageEnhance.Contrast(photo).enhance(1.1), "JPEG", quality=80)
    with make_group(system, [first, second]) as group:
        view = group.view()

        # The copy first: it joins, and the resolve of the version before it is refused.
        joined = upload(group.client, third)
        deduped(group.client, joined)
        late = group.resolve(view["id"], version=view["version"], trash=[group.ids[1]])
        assert late.status_code == 409, late.text
        assert late.json()["code"] == "group-changed"
        assert {m["id"] for m in group.view()["members"]} == {*group.ids, joined}
        assert group.ids[1] in listed(group.client)

        # The resolve first: the next copy joins the members left, not the trashed one.
        current = group.view()
        resolved = group.resolve(current["id"], version=current["version"], trash=[group.ids[1]])
        assert resolved.status_code == 200, resolved.text
        after = upload(group.client, fourth)
        deduped(group.client, after)
        assert {m["id"] for m in group.view()["members"]} == {group.ids[0], joined, after}
        assert group_id_of(group.client, group.ids[1]) is None


@pytest.fixture(scope="module")
def short_trash() -> Iterator[LocalSystem]:
    # a trash kept for about a second, looked at twice a second
    with running_system(
        "imgflow-trash-", {"TRASH_RETENTION_DAYS": "0.00001", "SWEEPER_INTERVAL_S": "0.5"}
    ) as running:
        yield running


def test_the_trash_is_purged_after_its_retention(short_trash: LocalSystem) -> None:
    settings = short_trash.settings()
    store = ObjectStore.from_settings(settings)
    with make_group(short_trash, _copies("coffee")[:2]) as group:
        view = group.view()
        trash = group.ids[1]
        keys = [
            r["object_key"]
            for r in query(
                settings.database_url,
                """SELECT object_key FROM images WHERE id = $1::uuid
                   UNION ALL SELECT object_key FROM renditions WHERE image_id = $1::uuid""",
                trash,
            )
        ]
        assert len(keys) > 1 and all(store.exists(k) for k in keys)
        assert group.resolve(view["id"], version=view["version"], trash=[trash]).status_code == 200

        def purged() -> bool:
            # the rows go last, after the objects (a delete marks, removes, then deletes)
            rows = query(settings.database_url, "SELECT 1 FROM images WHERE id = $1::uuid", trash)
            return not rows

        wait_for(purged, timeout_s=30, what="the purge of the trashed image")
        assert group.client.get(f"/v1/images/{trash}").status_code == 404
        assert not any(store.exists(k) for k in keys)
        # the kept image stays; the group went when it was left with one member
        assert group.client.get(f"/v1/images/{group.ids[0]}").status_code == 200
        assert group.client.get("/v1/duplicate-groups").json()["items"] == []


def test_group_changes_are_events_and_webhooks(
    system: LocalSystem,
    receiver: Receiver,  # noqa: F811
) -> None:
    tenant = new_tenant(system, "group-events")
    headers = bearer(tenant["api_key"])
    with httpx.Client(base_url=system.api_url, headers=headers, timeout=60) as client:
        hook = client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["duplicate_group.*"]}
        )
        assert hook.status_code == 201, hook.text
        ids = [upload(client, data) for data in _copies("rocket")[:2]]
        for image_id in ids:
            deduped(client, image_id)
        [group] = client.get("/v1/duplicate-groups").json()["items"]
        resolved = client.post(
            f"/v1/duplicate-groups/{group['id']}/resolve",
            json={"version": group["version"], "dismiss": True},
        )
        assert resolved.status_code == 200, resolved.text

        def both_delivered() -> list[dict[str, Any]] | None:
            documents = [json.loads(body) for _, body in receiver.requests]
            types = {d["type"] for d in documents}
            wanted = {"duplicate_group.updated", "duplicate_group.deleted"}
            return documents if wanted <= types else None

        documents = wait_for(both_delivered, timeout_s=60, what="the group's webhooks")
        by_type = {d["type"]: d["data"] for d in documents}  # deliveries may come in any order
        assert by_type["duplicate_group.updated"] == {
            "group_id": group["id"],
            "version": 1,
            "status": "active",
        }
        assert by_type["duplicate_group.deleted"]["group_id"] == group["id"]
        assert by_type["duplicate_group.deleted"]["status"] == "deleted"

        # the tenant's stream replays them (Last-Event-ID 0: from the start)
        seen = []
        with client.stream("GET", "/v1/events", headers={"Last-Event-ID": "0"}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and "duplicate_group." in line:
                    seen.append(json.loads(line.removeprefix("data:")))
                    if seen[-1]["type"] == "duplicate_group.deleted":
                        break
        assert seen[0]["group_id"] == group["id"] and "image_id" not in seen[0]


def test_webhooks_may_name_group_events() -> None:
    assert check_events(["duplicate_group.*", "duplicate_group.updated"]) == [
        "duplicate_group.*",
        "duplicate_group.updated",
    ]
    with pytest.raises(InvalidWebhook):
        check_events(["duplicate_group.merged"])

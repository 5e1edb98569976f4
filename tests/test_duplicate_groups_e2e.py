"""Stored groups through the whole system: the issue's two halves, in three upload orders.

The left and right halves of two real photographs, each half with two of the issue's
edited copies (tools/dedupe_eval's edits), uploaded through the API in three random
orders, each order by a tenant of its own (a tenant stores identical bytes once). The
halves of one photo must never share a group, each half must be one group with its
copies, and the groups must be the same in every order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import skimage.data
from PIL import Image
from sklearn.datasets import load_sample_image

from imgflow_localstack.system import LocalSystem
from tests.support import bearer, new_tenant, query, wait_for
from tools.dedupe_eval.dataset import HALVES, encode_jpeg
from tools.dedupe_eval.edits import EDITS, crop

COPIES = ("brightness-contrast", "watermark")


def _photos() -> dict[str, Image.Image]:
    return {
        "astronaut": Image.fromarray(skimage.data.astronaut()).convert("RGB"),
        "china": Image.fromarray(load_sample_image("china.jpg")).convert("RGB"),
    }


def _set() -> dict[str, bytes]:
    """label (photo/half/edit) -> the bytes a client uploads."""
    out = {}
    for name, photo in _photos().items():
        for side, box in HALVES.items():
            half = crop(photo, *box)
            out[f"{name}/{side}/original"] = encode_jpeg(half)
            for edit in COPIES:
                out[f"{name}/{side}/{edit}"] = EDITS[edit](half)
    return out


def _dedupe_done(client: httpx.Client, ids: list[str]) -> Callable[[], bool]:
    def probe() -> bool:
        for image_id in ids:
            stage = client.get(f"/v1/images/{image_id}").json()["stages"]["dedupe"]
            if stage["status"] not in ("done", "failed"):
                return False
            assert stage["status"] == "done", stage
        return True

    return probe


def _settle(client: httpx.Client, database_url: str, ids: list[str]) -> None:
    """Wait for every check; then check again the images whose pHash came after their
    check (the next dedupe job of any image would, but none may come in a test)."""
    wait_for(_dedupe_done(client, ids), timeout_s=300, what="every dedupe stage")
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
    wait_for(_dedupe_done(client, ids), timeout_s=300, what="the rechecks")


def _groups(database_url: str, labels: dict[str, str]) -> set[frozenset[str]]:
    rows = query(
        database_url,
        """SELECT group_id, array_agg(image_id::text) AS members FROM duplicate_group_members
            WHERE image_id = ANY($1) GROUP BY group_id""",
        list(labels),
    )
    return {frozenset(labels[m] for m in r["members"]) for r in rows}


@dataclass(frozen=True)
class Run:
    api_key: str
    labels: dict[str, str]  # image id -> label
    groups: set[frozenset[str]]


@pytest.fixture(scope="module")
def runs(system: LocalSystem, database_url: str) -> list[Run]:
    images = _set()
    out = []
    for seed in range(3):
        tenant = new_tenant(system, "order")
        order = list(images)
        random.Random(seed).shuffle(order)
        labels: dict[str, str] = {}
        with httpx.Client(
            base_url=system.api_url, headers=bearer(tenant["api_key"]), timeout=60
        ) as client:
            for label in order:
                response = client.post("/v1/images", content=images[label])
                assert response.status_code == 201, response.text
                labels[response.json()["id"]] = label
            _settle(client, database_url, list(labels))
        out.append(Run(tenant["api_key"], labels, _groups(database_url, labels)))
    return out


@pytest.fixture(scope="module")
def outcomes(runs: list[Run]) -> list[set[frozenset[str]]]:
    return [run.groups for run in runs]


def test_the_groups_are_the_same_in_every_upload_order(outcomes: list[Any]) -> None:
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_the_halves_of_one_photo_never_share_a_group(outcomes: list[Any]) -> None:
    for groups in outcomes:
        for group in groups:
            assert len({label.rsplit("/", 1)[0] for label in group}) == 1, group


def test_each_half_is_one_group_with_its_copies(outcomes: list[Any]) -> None:
    expected = {
        frozenset(f"{name}/{side}/{edit}" for edit in ("original", *COPIES))
        for name in _photos()
        for side in HALVES
    }
    assert outcomes[0] == expected


@pytest.fixture(scope="module")
def client(system: LocalSystem, runs: list[Run]) -> Iterator[httpx.Client]:
    headers = bearer(runs[0].api_key)
    with httpx.Client(base_url=system.api_url, headers=headers, timeout=60) as client:
        yield client


def _listing(client: httpx.Client, limit: int) -> list[dict[str, Any]]:
    items, url = [], f"/v1/duplicate-groups?limit={limit}"
    while True:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        if body["next_cursor"] is None:
            assert "link" not in response.headers
            return items
        assert response.headers["link"].endswith('>; rel="next"')
        url = f"/v1/duplicate-groups?limit={limit}&cursor={body['next_cursor']}"


def test_the_listing_pages_through_the_tenants_groups_latest_change_first(
    client: httpx.Client, runs: list[Run]
) -> None:
    whole = _listing(client, 50)
    assert len(whole) == len(runs[0].groups) == 4
    assert [g["id"] for g in _listing(client, 1)] == [g["id"] for g in whole]
    changed = [(g["updated_at"], g["id"]) for g in whole]
    assert changed == sorted(changed, reverse=True)
    assert all(g["size"] == 3 and g["version"] >= 1 for g in whole)


def test_a_group_shows_members_evidence_and_a_suggested_keeper(
    client: httpx.Client, runs: list[Run]
) -> None:
    labels = runs[0].labels
    for summary in _listing(client, 50):
        response = client.get(summary["url"])
        assert response.status_code == 200, response.text
        group = response.json()
        members = {m["id"] for m in group["members"]}
        assert frozenset(labels[m] for m in members) in runs[0].groups
        assert group["version"] == summary["version"]
        assert group["evidence"], group
        for pair in group["evidence"]:
            assert {pair["a"], pair["b"]} <= members
            assert pair["method"] in ("cnn", "phash", "cnn+phash") and pair["score"] > 0
            assert pair["basis"], pair  # what decided it, in words
        assert group["suggested_keeper"]["id"] in members
        assert group["suggested_keeper"]["reasons"]
        # the listing names the same keeper, so a client needs no request per group
        assert summary["suggested_keeper"] == group["suggested_keeper"]
        thumbnail = group["members"][0]["thumbnails"][0]["url"]
        assert client.get(thumbnail).status_code == 200


def test_an_images_duplicates_name_its_stored_group(client: httpx.Client, runs: list[Run]) -> None:
    summary = _listing(client, 1)[0]
    group = client.get(summary["url"]).json()
    for member in group["members"]:
        body = client.get(f"/v1/images/{member['id']}/duplicates").json()
        assert body["group_id"] == group["id"]
        assert set(body["group"]) == {m["id"] for m in group["members"]}


def test_another_tenants_group_is_a_404_problem(system: LocalSystem, runs: list[Run]) -> None:
    with httpx.Client(base_url=system.api_url, headers=bearer(runs[1].api_key)) as other:
        mine = other.get("/v1/duplicate-groups").json()["items"]
    with httpx.Client(base_url=system.api_url, headers=bearer(runs[0].api_key)) as client:
        for group_id in (mine[0]["id"], "00000000-0000-0000-0000-00000000abcd", "nope"):
            response = client.get(f"/v1/duplicate-groups/{group_id}")
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "duplicate-group-not-found"


def test_a_cursor_of_one_listing_is_a_400_on_the_other(client: httpx.Client) -> None:
    groups = client.get("/v1/duplicate-groups", params={"limit": 1}).json()["next_cursor"]
    images = client.get("/v1/images", params={"limit": 1}).json()["next_cursor"]
    assert groups and images
    for path, cursor in (("/v1/images", groups), ("/v1/duplicate-groups", images)):
        response = client.get(path, params={"cursor": cursor})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "bad-cursor"
        assert "not " + path in response.json()["detail"]

"""Groups a trash or a delete changed are regrouped by the API's background loop, without
waiting for another upload's dedupe job.

A chain of three images in a tenant of its own: A ~ B and B ~ C are duplicate pairs, A
and C are not (synthetic vectors, checked by the deduper's own code against the session's
real PostgreSQL, as test_duplicate_groups.py does). Average linkage makes one group of the
three (C matches half of {A, B}). Take B away and A and C share no pair: the group must
go, and the running API regroups it on its own, as its event stream shows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import numpy as np
import pytest

from imgflow_deduper.checks import check_image
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.db import tenants
from tests.support import bearer
from tests.test_dedupe_repository import DIM, POLICY, RNG, db  # noqa: F401
from tests.test_duplicate_groups import group_of, new_image, new_tenant

Db = Callable[..., Any]
TIMEOUT_S = 60
COS = 0.97  # A-B and B-C; A-C is cos(2 acos 0.97) = 0.88, under the policy's 0.94


def _chain() -> list[np.ndarray]:
    """A, B, C on one great circle, each 14 degrees from the next."""
    a = RNG.normal(size=DIM)
    a /= np.linalg.norm(a)
    u = RNG.normal(size=DIM)
    u -= (u @ a) * a
    u /= np.linalg.norm(u)
    theta = np.arccos(COS)
    return [(np.cos(k * theta) * a + np.sin(k * theta) * u).astype(np.float32) for k in range(3)]


def _api_key(db: Db, tenant: UUID) -> str:  # noqa: F811
    async def issue(conn: asyncpg.Connection) -> str:
        found = tenants.Tenant(tenant, str(tenant))
        return (await tenants.issue_key(conn, found, label="regroup test")).key

    return db(issue)  # type: ignore[no-any-return]


async def _group_events(response: httpx.Response, opened: asyncio.Event) -> Any:
    """Each duplicate_group event's data, from the tenant's stream."""
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
            if event == "open":
                opened.set()
        elif line.startswith("data:") and event == "duplicate_group":
            yield json.loads(line.removeprefix("data:"))


@pytest.mark.parametrize("take_away", ["trash", "delete"])
def test_a_group_a_member_left_is_regrouped_without_another_upload(
    system: LocalSystem,
    db: Db,  # noqa: F811
    take_away: str,
) -> None:
    tenant = new_tenant(db)
    a, b, c = (new_image(db, tenant) for _ in range(3))
    for image, vector in zip((a, b, c), _chain(), strict=True):
        db(check_image, image, vector, POLICY)
    group = group_of(db, a)
    assert group is not None and group["members"] == {a, b, c}, "the chain is one group"

    headers = bearer(_api_key(db, tenant))

    async def scenario() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(
            base_url=system.api_url, headers=headers, timeout=TIMEOUT_S
        ) as client:
            opened, seen = asyncio.Event(), []

            async def watch() -> None:
                async with client.stream("GET", "/v1/events") as response:
                    async for data in _group_events(response, opened):
                        seen.append(data)
                        if data["type"] == "duplicate_group.deleted":
                            return

            watcher = asyncio.create_task(watch())
            await asyncio.wait_for(opened.wait(), TIMEOUT_S)
            if take_away == "trash":
                response = await client.post(
                    f"/v1/duplicate-groups/{group['id']}/resolve",
                    json={"version": group["version"], "keep": [str(a)], "trash": [str(b)]},
                )
                assert response.status_code == 200, response.text
                assert response.json()["version"] == group["version"] + 1
            else:
                response = await client.delete(f"/v1/images/{b}")
                assert response.status_code == 204, response.text
            await asyncio.wait_for(watcher, TIMEOUT_S)  # no upload, no dedupe job: the API's
            listed = (await client.get("/v1/duplicate-groups")).json()["items"]
            assert listed == []
            for image in (a, c):
                body = (await client.get(f"/v1/images/{image}/duplicates")).json()
                assert body["group_id"] is None and body["group"] == [str(image)]
            return seen

    events = asyncio.run(scenario())
    assert events[-1] == {**events[-1], "group_id": str(group["id"]), "status": "deleted"}
    assert group_of(db, a) is None and group_of(db, c) is None

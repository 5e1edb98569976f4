"""A stack follows its duplicate groups when the API's background loop regroups them,
without waiting for another upload's dedupe job.

In a tenant of its own: A ~ B and B ~ C are copies (one group by average linkage, though
A and C do not pair), and F is another frame of A's scene: one stack, {A, B, C} and F.
Resolving the stack by trashing B restacks it at once, over the groups as stored: the
group {A, C} is flagged, still whole, so C stays. When the running API regroups it (A
and C share no pair: the group goes), the same pass restacks: C has nothing in the
scene any more and leaves the stack. (Checks run the deduper's own code on synthetic
vectors against the session's real PostgreSQL, with the geometric evidence given per
pair, as in test_similar_stacks_upkeep.py.)
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from imgflow_deduper.checks import check_image
from imgflow_deduper.overlap import Overlap
from imgflow_localstack.system import LocalSystem
from tests.support import bearer
from tests.test_dedupe_repository import GEOMETRY_POLICY, db, near  # noqa: F401
from tests.test_duplicate_groups import group_of, new_image, new_tenant
from tests.test_duplicate_regroup import TIMEOUT_S, Db, _api_key, _chain, _group_events
from tests.test_similar_stacks_upkeep import COPY, FRAME

NO_MATCH = Overlap(0, 0.0, float("nan"), False, 500)


def _stack_of(db: Db, image: UUID) -> UUID | None:  # noqa: F811
    async def fetch(conn: asyncpg.Connection) -> UUID | None:
        return await conn.fetchval(  # type: ignore[no-any-return]
            "SELECT stack_id FROM similar_stack_members WHERE image_id = $1", image
        )

    return db(fetch)  # type: ignore[no-any-return]


def test_a_stack_follows_its_group_when_the_background_loop_regroups_it(
    system: LocalSystem,
    db: Db,  # noqa: F811
) -> None:
    tenant = new_tenant(db)
    a, b, c, f = (new_image(db, tenant) for _ in range(4))
    evidence = {frozenset((a, b)): COPY, frozenset((b, c)): COPY, frozenset((a, f)): FRAME}

    def probe(x: UUID, y: UUID) -> Overlap | None:
        return evidence.get(frozenset((x, y)), NO_MATCH)

    chain = _chain()  # A, B, C: 0.97 apart, A and C 0.88 (under the policy's 0.94)
    for image, vector in (*zip((a, b, c), chain, strict=True), (f, near(chain[0], 0.90))):
        db(check_image, image, vector, GEOMETRY_POLICY, None, probe)
    group = group_of(db, a)
    assert group is not None and group["members"] == {a, b, c}, "the chain is one group"
    stack_id = _stack_of(db, a)
    assert stack_id is not None and {_stack_of(db, i) for i in (b, c, f)} == {stack_id}

    headers = bearer(_api_key(db, tenant))

    async def scenario() -> dict[str, Any]:
        async with httpx.AsyncClient(
            base_url=system.api_url, headers=headers, timeout=TIMEOUT_S
        ) as client:
            version = (await client.get(f"/v1/similar-stacks/{stack_id}")).json()["version"]
            opened = asyncio.Event()

            async def group_gone() -> None:
                async with client.stream("GET", "/v1/events") as response:
                    async for data in _group_events(response, opened):
                        if data == {**data, "group_id": str(group["id"]), "status": "deleted"}:
                            return

            watcher = asyncio.create_task(group_gone())
            await asyncio.wait_for(opened.wait(), TIMEOUT_S)
            resolved = await client.post(
                f"/v1/similar-stacks/{stack_id}/resolve",
                json={"version": version, "trash": [str(b)]},
            )
            assert resolved.status_code == 200, resolved.text
            # no upload, no dedupe job: the API's loop regroups, and restacks in the same
            # transaction, so the stack is right once the group's event is out
            await asyncio.wait_for(watcher, TIMEOUT_S)
            assert (await client.get(f"/v1/images/{c}")).json()["similar_stack"] is None
            response = await client.get(f"/v1/similar-stacks/{stack_id}")
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

    after = asyncio.run(scenario())
    assert {m["id"] for m in after["members"]} == {str(a), str(f)}
    assert group_of(db, a) is None and group_of(db, c) is None
    assert _stack_of(db, c) is None

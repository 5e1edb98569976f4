"""Stored resolve answers are forgotten after IMGFLOW_RESOLUTION_RETENTION_DAYS, against
the session's real PostgreSQL; fresher ones stay, so a retry still answers the same."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID, uuid4

from imgflow_runtime.db.pool import connect
from imgflow_runtime.db.tenants import DEFAULT_TENANT_ID
from imgflow_upload_api.duplicates.repository import prune_resolutions


def test_answers_past_the_retention_go_and_fresher_ones_stay(database_url: str) -> None:
    old, fresh = uuid4(), uuid4()

    async def scenario() -> tuple[int, set[UUID]]:
        conn = await connect(database_url)
        # Uncommitted rows, rolled back at the end: the running API prunes the same table
        # every minute but cannot see them, so only the prune under test can delete one.
        transaction = conn.transaction()
        await transaction.start()
        try:
            for group_id, age_days in ((old, 31), (fresh, 29)):
                await conn.execute(
                    """INSERT INTO duplicate_resolutions
                           (group_id, version, tenant_id, request, answer, created_at)
                       VALUES ($1, 1, $2, $3, $3, now() - make_interval(days => $4))""",
                    group_id,
                    DEFAULT_TENANT_ID,
                    json.loads('{"version": 1}'),
                    age_days,
                )
            pruned = await prune_resolutions(conn, 30.0)
            rows = await conn.fetch(
                "SELECT group_id FROM duplicate_resolutions WHERE group_id = ANY($1::uuid[])",
                [old, fresh],
            )
            return pruned, {r["group_id"] for r in rows}
        finally:
            await transaction.rollback()
            await conn.close()

    # No other test writes answers this old, so the one deleted is ours.
    assert asyncio.run(scenario()) == (1, {fresh})

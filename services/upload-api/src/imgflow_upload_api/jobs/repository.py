"""The outbox rows the relay sends (they are written by imgflow_runtime.db.outbox, in the
transaction of whoever enqueues)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

# Any constant works; it only has to be the same in every API replica.
_RELAY_LOCK_ID = 0x1F_6F_77_02

_COLUMNS = "id, tenant_id, image_id, kind, task_name, queue, payload, trace_context"


async def lock_batch(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` rows, oldest first, locked; rows another replica holds are skipped."""
    return await conn.fetch(
        f"""SELECT {_COLUMNS} FROM outbox
            ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )


async def take_relay_turn(conn: asyncpg.Connection) -> bool:
    """Whether this transaction is the one relay choosing what to publish now; the
    fair order and the broker's depths assume a single chooser at a time."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK_ID))


async def lock_lanes(
    conn: asyncpg.Connection,
    queue: str,
    kind: str,
    per_lane: int,
    default_weight: int,
    skip: list[int] | None = None,
) -> list[asyncpg.Record]:
    """The oldest ``per_lane`` rows of each tenant's lane of ``queue`` and ``kind``,
    locked, each with its tenant's weight; rows in ``skip`` (already picked in this
    transaction, which holds their locks) left out."""
    return await conn.fetch(
        f"""SELECT o.*, coalesce(l.weight, $4) AS weight
              FROM (SELECT DISTINCT tenant_id FROM outbox
                     WHERE queue = $1 AND kind = $2) AS lane
              CROSS JOIN LATERAL (
                    SELECT {_COLUMNS} FROM outbox AS o
                     WHERE o.queue = $1 AND o.kind = $2 AND o.tenant_id = lane.tenant_id
                       AND o.id <> ALL($5::bigint[])
                     ORDER BY o.id LIMIT $3 FOR UPDATE SKIP LOCKED) AS o
              LEFT JOIN tenant_limits AS l ON l.tenant_id = lane.tenant_id""",
        queue,
        kind,
        per_lane,
        default_weight,
        skip or [],
    )


async def lock_light_lanes(
    conn: asyncpg.Connection,
    queues: list[str],
    kind: str,
    max_waiting: int,
    default_weight: int,
) -> list[asyncpg.Record]:
    """Every row of ``kind`` for ``queues`` of the tenants with at most ``max_waiting``
    such rows waiting for any one queue (light tenants: the express lane), locked, with
    their weights. A tenant with a backlog at one stage is not light at the others either
    (its later stages would otherwise pass others at a stage its workers keep up with).
    One query for all the queues, as it runs on every relay pass."""
    return await conn.fetch(
        f"""SELECT o.*, coalesce(l.weight, $4) AS weight
              FROM (SELECT tenant_id
                      FROM (SELECT tenant_id, count(*) AS waiting FROM outbox
                             WHERE kind = $2 GROUP BY tenant_id, queue) AS per_queue
                     GROUP BY tenant_id HAVING max(waiting) <= $3) AS light
              CROSS JOIN LATERAL (
                    SELECT {_COLUMNS} FROM outbox AS o
                     WHERE o.queue = ANY($1::text[]) AND o.kind = $2
                       AND o.tenant_id = light.tenant_id
                     ORDER BY o.id FOR UPDATE SKIP LOCKED) AS o
              LEFT JOIN tenant_limits AS l ON l.tenant_id = light.tenant_id""",
        queues,
        kind,
        max_waiting,
        default_weight,
    )


async def delete_sent(conn: asyncpg.Connection, ids: list[int]) -> None:
    """Delete the sent rows; their stages' queue wait starts now. The sweeper counts its
    deadline from there and takes the broker's order to be ``queued_at`` order
    (QueueHead), which fair scheduling would otherwise break: a tenant's old job may be
    sent after another tenant's newer ones. The time in the outbox is its own metric.

    The stage rows are locked in the one order first (imgflow_runtime.db.stages)."""
    await conn.execute(
        """WITH sent AS (
               DELETE FROM outbox WHERE id = ANY($1::bigint[])
            RETURNING image_id, payload ->> 'stage' AS stage
           ), waiting AS (
               SELECT s.image_id, s.stage
                 FROM image_stages AS s
                 JOIN sent ON s.image_id = sent.image_id AND s.stage = sent.stage
                WHERE s.status = 'pending'
                ORDER BY s.image_id, s.stage FOR UPDATE OF s
           )
           UPDATE image_stages AS s SET queued_at = now()
             FROM waiting AS w WHERE s.image_id = w.image_id AND s.stage = w.stage""",
        ids,
    )


async def record_failure(conn: asyncpg.Connection, ids: list[int], error: str) -> None:
    await conn.execute(
        """UPDATE outbox SET attempts = attempts + 1, last_error = $2
            WHERE id = ANY($1::bigint[])""",
        ids,
        error,
    )


async def count_pending(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox"))


async def pending_by_tenant(conn: asyncpg.Connection) -> dict[UUID, dict[str, int]]:
    """Jobs waiting in the outbox per tenant and kind: {tenant id: {kind: count}}."""
    rows = await conn.fetch("SELECT tenant_id, kind, count(*) AS n FROM outbox GROUP BY 1, 2")
    counts: dict[UUID, dict[str, int]] = {}
    for r in rows:
        counts.setdefault(r["tenant_id"], {})[r["kind"]] = r["n"]
    return counts


async def any_pending(conn: asyncpg.Connection) -> bool:
    """Whether any row waits (rows deleted in this transaction no longer count)."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM outbox)"))

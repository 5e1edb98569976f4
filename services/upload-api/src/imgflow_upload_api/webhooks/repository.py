"""The webhooks' queries: a tenant's subscriptions, their deliveries, and the dispatcher's
claim and record of attempts.

Deliveries themselves are written by the event triggers (migration 0008), in the same
transaction as the change they announce; dispatch.py sends them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class Webhook:
    id: UUID
    url: str
    events: list[str]
    created_at: Any


async def create(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    url: str,
    events: list[str],
    secret: str,
    max_per_tenant: int,
) -> Webhook | None:
    """Register a webhook; None if the tenant has ``max_per_tenant`` already."""
    async with conn.transaction():
        # one tenant's registrations in turn, so the limit holds under concurrency
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 8))", tenant_id
        )
        count = await conn.fetchval("SELECT count(*) FROM webhooks WHERE tenant_id = $1", tenant_id)
        if count >= max_per_tenant:
            return None
        row = await conn.fetchrow(
            """INSERT INTO webhooks (id, tenant_id, url, events, secret) VALUES ($1, $2, $3, $4, $5)
               RETURNING id, url, events, created_at""",
            uuid.uuid4(),
            tenant_id,
            url,
            events,
            secret,
        )
    return Webhook(**dict(row))


async def list_all(conn: asyncpg.Connection, tenant_id: UUID) -> list[Webhook]:
    rows = await conn.fetch(
        """SELECT id, url, events, created_at FROM webhooks WHERE tenant_id = $1
            ORDER BY created_at, id""",
        tenant_id,
    )
    return [Webhook(**dict(r)) for r in rows]


async def get(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> Webhook | None:
    row = await conn.fetchrow(
        "SELECT id, url, events, created_at FROM webhooks WHERE id = $1 AND tenant_id = $2",
        webhook_id,
        tenant_id,
    )
    return None if row is None else Webhook(**dict(row))


async def delete(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> bool:
    """Remove a webhook and its deliveries (pending ones are never sent)."""
    done = await conn.execute(
        "DELETE FROM webhooks WHERE id = $1 AND tenant_id = $2", webhook_id, tenant_id
    )
    return done != "DELETE 0"


async def deliveries(
    conn: asyncpg.Connection, webhook_id: UUID, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, event_id, type, payload, status, attempts, next_attempt_at,
                  last_status_code, last_error, created_at, finished_at
             FROM webhook_deliveries WHERE webhook_id = $1
            ORDER BY created_at DESC, id LIMIT $2""",
        webhook_id,
        limit,
    )
    return [dict(r) for r in rows]


async def claim_due(
    conn: asyncpg.Connection,
    limit: int,
    lease_s: float,
    *,
    per_webhook: int,
    busy: list[UUID],
) -> list[asyncpg.Record]:
    """Take up to ``limit`` due deliveries for ``lease_s``: their attempt is counted and
    their next attempt moved past the lease, so no other replica takes them meanwhile.
    At most ``per_webhook`` of one webhook, and none of the ``busy`` ones (this process
    still waits on them): a slow receiver holds its own slots, never everyone's."""
    return await conn.fetch(
        """WITH ranked AS (
               SELECT id, next_attempt_at,
                      row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at) AS n
                 FROM webhook_deliveries
                WHERE status = 'pending' AND next_attempt_at <= now()
                  AND webhook_id <> ALL($4::uuid[])),
           due AS (
               SELECT d.id FROM webhook_deliveries AS d JOIN ranked AS r ON r.id = d.id
                WHERE r.n <= $3
                ORDER BY r.next_attempt_at LIMIT $1
                  FOR UPDATE OF d SKIP LOCKED)
           UPDATE webhook_deliveries AS d
              SET attempts = d.attempts + 1,
                  next_attempt_at = now() + make_interval(secs => $2)
             FROM due, webhooks AS w
            WHERE d.id = due.id AND w.id = d.webhook_id
        RETURNING d.id, d.webhook_id, w.url, w.secret, d.type, d.payload, d.attempts""",
        limit,
        lease_s,
        per_webhook,
        busy,
    )


async def record_attempt(
    conn: asyncpg.Connection,
    delivery_id: UUID,
    attempt: int,
    status: str,
    status_code: int | None,
    error: str | None,
    retry_in_s: float,
) -> None:
    # Guarded by the attempt number: a late writer whose lease ran out and whose row was
    # claimed again must not overwrite the newer attempt.
    await conn.execute(
        """UPDATE webhook_deliveries
              SET status = $3, last_status_code = $4, last_error = $5,
                  next_attempt_at = now() + make_interval(secs => $6),
                  finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
            WHERE id = $1 AND attempts = $2""",
        delivery_id,
        attempt,
        status,
        status_code,
        error,
        retry_in_s,
    )

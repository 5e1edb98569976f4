"""The webhooks' queries: a tenant's subscriptions with their circuit-breaker state,
their deliveries, and re-enabling a disabled one.

Deliveries themselves are written by the event triggers (migration 0008), in the same
transaction as the change they announce; the webhook sender (services/webhook-sender)
sends them. The API makes no outbound call.
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
    state: str = "active"
    state_since: Any = None
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: Any = None
    next_probe_at: Any = None
    pending_deliveries: int = 0
    backlog_dropped: int = 0


_COLUMNS = """w.id, w.url, w.events, w.created_at, w.state, w.state_since, w.consecutive_failures,
              w.last_error, w.last_error_at, w.next_probe_at, w.backlog_dropped,
              (SELECT count(*) FROM webhook_deliveries AS d
                WHERE d.webhook_id = w.id AND d.status = 'pending') AS pending_deliveries"""


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
               RETURNING id, url, events, created_at, state, state_since""",
            uuid.uuid4(),
            tenant_id,
            url,
            events,
            secret,
        )
    return Webhook(**dict(row))


async def list_all(conn: asyncpg.Connection, tenant_id: UUID) -> list[Webhook]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM webhooks AS w WHERE w.tenant_id = $1
            ORDER BY w.created_at, w.id""",
        tenant_id,
    )
    return [Webhook(**dict(r)) for r in rows]


async def get(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> Webhook | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM webhooks AS w WHERE w.id = $1 AND w.tenant_id = $2",
        webhook_id,
        tenant_id,
    )
    return None if row is None else Webhook(**dict(row))


async def enable(
    conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID, *, drop_backlog: bool
) -> tuple[str, int] | None:
    """Make a paused or disabled webhook active again: its pending deliveries go now, in
    the order they were queued, or are dropped. (state before, deliveries dropped); None
    if no such webhook. Locks the webhook before its deliveries, as the sender does."""
    async with conn.transaction():
        before = await conn.fetchval(
            "SELECT state FROM webhooks WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
            webhook_id,
            tenant_id,
        )
        if before is None:
            return None
        await conn.execute(
            """UPDATE webhooks
                  SET state = 'active', state_since = CASE WHEN state = 'active'
                                                           THEN state_since ELSE now() END,
                      consecutive_failures = 0, failing_since = NULL, next_probe_at = NULL,
                      probe_interval_s = NULL, unresolvable_since = NULL
                WHERE id = $1""",
            webhook_id,
        )
        if drop_backlog:
            done = await conn.execute(
                """UPDATE webhook_deliveries
                      SET status = 'dropped', finished_at = now(),
                          last_error = 'dropped when the webhook was re-enabled'
                    WHERE webhook_id = $1 AND status = 'pending'""",
                webhook_id,
            )
            return before, int(done.split()[-1])
        await conn.execute(
            """UPDATE webhook_deliveries SET next_attempt_at = now()
                WHERE webhook_id = $1 AND status = 'pending' AND next_attempt_at > now()
                  -- an attempt in flight keeps its lease (a sender is waiting on it)
                  AND (leased_until IS NULL OR leased_until <= now())""",
            webhook_id,
        )
        return before, 0


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

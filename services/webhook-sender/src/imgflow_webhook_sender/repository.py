"""Every query of the webhook sender: claiming due deliveries and probes, recording an
attempt with its endpoint's breaker, and the counts behind the gauges.

Claims move a delivery's ``next_attempt_at`` past the attempt's deadline (a lease) under
FOR UPDATE SKIP LOCKED: replicas never take the same row, no lock is held while a receiver
answers, and a row of a process that died mid-attempt comes back once its lease passes.
Lock order is always webhook, then delivery (as the API's delete and re-enable take them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_webhook_sender.breaker import Breaker

_RETURNING = """d.id, d.webhook_id, w.url, w.secret, w.tenant_id, w.host, d.type, d.payload,
                d.attempts, d.created_at, w.state = 'paused' AS probe"""


@dataclass(frozen=True)
class InFlight:
    """Attempts this process is waiting on, per endpoint, tenant and host."""

    webhooks: Mapping[UUID, int]
    tenants: Mapping[UUID, int]
    hosts: Mapping[str, int]


@dataclass(frozen=True)
class Limits:
    per_endpoint: int
    per_tenant: int
    per_host: int


async def claim_probes(
    conn: asyncpg.Connection, limit: int, lease_s: float
) -> list[asyncpg.Record]:
    """One probe per paused endpoint whose probe is due: its oldest pending delivery. The
    endpoint's next probe moves past the lease, so no replica probes it twice meanwhile."""
    async with conn.transaction():
        hooks = await conn.fetch(
            """UPDATE webhooks SET next_probe_at = now() + make_interval(secs => $2)
                WHERE id IN (SELECT id FROM webhooks
                              WHERE state = 'paused' AND next_probe_at <= now()
                              ORDER BY next_probe_at LIMIT $1 FOR UPDATE SKIP LOCKED)
            RETURNING id""",
            limit,
            lease_s,
        )
        if not hooks:
            return []
        return await conn.fetch(
            f"""WITH first AS (
                    SELECT (SELECT p.id FROM webhook_deliveries AS p
                             WHERE p.webhook_id = h AND p.status = 'pending'
                             ORDER BY p.created_at, p.id LIMIT 1) AS id
                      FROM unnest($1::uuid[]) AS h)
                UPDATE webhook_deliveries AS d
                   SET attempts = d.attempts + 1,
                       next_attempt_at = now() + make_interval(secs => $2)
                  FROM first, webhooks AS w
                 WHERE d.id = first.id AND w.id = d.webhook_id
             RETURNING {_RETURNING}""",
            [h["id"] for h in hooks],
            lease_s,
        )


async def claim_due(
    conn: asyncpg.Connection, limit: int, lease_s: float, limits: Limits, busy: InFlight
) -> list[asyncpg.Record]:
    """Up to ``limit`` due deliveries of active endpoints, each endpoint's in the order
    they were queued, within the room this process has left per endpoint, tenant and
    host; tenants take turns (the first of each tenant, then the second...), so one
    tenant's thousands of events never fill every slot."""
    return await conn.fetch(
        f"""WITH busy_w AS (SELECT * FROM unnest($2::uuid[], $3::int[]) AS t(key, n)),
                 busy_t AS (SELECT * FROM unnest($4::uuid[], $5::int[]) AS t(key, n)),
                 busy_h AS (SELECT * FROM unnest($6::text[], $7::int[]) AS t(key, n)),
                 hooks AS (
                     SELECT w.id, w.tenant_id, w.host, $8 - coalesce(b.n, 0) AS room
                       FROM webhooks AS w LEFT JOIN busy_w AS b ON b.key = w.id
                      WHERE w.state = 'active'),
                 candidates AS (
                     SELECT c.id, c.created_at, h.tenant_id, h.host
                       FROM hooks AS h CROSS JOIN LATERAL (
                            SELECT id, created_at FROM webhook_deliveries
                             WHERE webhook_id = h.id AND status = 'pending'
                               AND next_attempt_at <= now()
                             ORDER BY created_at, id LIMIT h.room) AS c
                      WHERE h.room > 0),
                 ranked AS (
                     SELECT c.id, c.created_at,
                            coalesce(bt.n, 0) + row_number() OVER (
                                PARTITION BY c.tenant_id ORDER BY c.created_at, c.id) AS nt,
                            coalesce(bh.n, 0) + row_number() OVER (
                                PARTITION BY c.host ORDER BY c.created_at, c.id) AS nh
                       FROM candidates AS c
                       LEFT JOIN busy_t AS bt ON bt.key = c.tenant_id
                       LEFT JOIN busy_h AS bh ON bh.key = c.host),
                 due AS (
                     SELECT d.id FROM webhook_deliveries AS d JOIN ranked AS r ON r.id = d.id
                      -- rechecked on the row's latest version once locked: a row another
                      -- replica claimed after this snapshot is no longer due
                      WHERE r.nt <= $9 AND r.nh <= $10
                        AND d.status = 'pending' AND d.next_attempt_at <= now()
                      ORDER BY r.nt, r.created_at LIMIT $1
                        FOR UPDATE OF d SKIP LOCKED)
            UPDATE webhook_deliveries AS d
               SET attempts = d.attempts + 1,
                   next_attempt_at = now() + make_interval(secs => $11)
              FROM due, webhooks AS w
             WHERE d.id = due.id AND w.id = d.webhook_id
         RETURNING {_RETURNING}""",
        limit,
        list(busy.webhooks),
        list(busy.webhooks.values()),
        list(busy.tenants),
        list(busy.tenants.values()),
        list(busy.hosts),
        list(busy.hosts.values()),
        limits.per_endpoint,
        limits.per_tenant,
        limits.per_host,
        lease_s,
    )


@dataclass(frozen=True)
class EndpointRow:
    breaker: Breaker
    tenant_id: UUID
    unresolvable_since: datetime | None
    now: datetime


async def lock_endpoint(conn: asyncpg.Connection, webhook_id: UUID) -> EndpointRow | None:
    row = await conn.fetchrow(
        """SELECT state, state_since, consecutive_failures, failing_since, probe_interval_s,
                  next_probe_at, tenant_id, unresolvable_since, now() AS now
             FROM webhooks WHERE id = $1 FOR UPDATE""",
        webhook_id,
    )
    if row is None:
        return None
    breaker = Breaker(
        state=row["state"],
        state_since=row["state_since"],
        consecutive_failures=row["consecutive_failures"],
        failing_since=row["failing_since"],
        probe_interval_s=row["probe_interval_s"],
        next_probe_at=row["next_probe_at"],
    )
    return EndpointRow(breaker, row["tenant_id"], row["unresolvable_since"], row["now"])


async def finish_attempt(
    conn: asyncpg.Connection,
    delivery_id: UUID,
    attempt: int,
    status: str,
    status_code: int | None,
    error: str | None,
    retry_in_s: float,
) -> bool:
    """Record an attempt's outcome; False if a newer attempt owns the row (this one's
    lease ran out and another took it), which then writes nothing."""
    done = await conn.execute(
        """UPDATE webhook_deliveries
              SET status = $3, last_status_code = $4, last_error = $5,
                  next_attempt_at = now() + make_interval(secs => $6),
                  finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
            WHERE id = $1 AND attempts = $2 AND status = 'pending'""",
        delivery_id,
        attempt,
        status,
        status_code,
        error,
        retry_in_s,
    )
    return done != "UPDATE 0"


async def save_endpoint(
    conn: asyncpg.Connection,
    webhook_id: UUID,
    b: Breaker,
    error: str | None,
    unresolvable_since: datetime | None,
) -> None:
    await conn.execute(
        """UPDATE webhooks
              SET state = $2, state_since = $3, consecutive_failures = $4, failing_since = $5,
                  probe_interval_s = $6, next_probe_at = $7,
                  last_error = coalesce($8, last_error),
                  last_error_at = CASE WHEN $8 IS NULL THEN last_error_at ELSE now() END,
                  unresolvable_since = $9
            WHERE id = $1""",
        webhook_id,
        b.state,
        b.state_since,
        b.consecutive_failures,
        b.failing_since,
        b.probe_interval_s,
        b.next_probe_at,
        error,
        unresolvable_since,
    )


async def release_backlog(conn: asyncpg.Connection, webhook_id: UUID) -> None:
    """A resumed endpoint's waiting deliveries are due now (in their order)."""
    await conn.execute(
        """UPDATE webhook_deliveries SET next_attempt_at = now()
            WHERE webhook_id = $1 AND status = 'pending' AND next_attempt_at > now()""",
        webhook_id,
    )


async def announce_disabled(
    conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID, error: str | None
) -> None:
    """``webhook.disabled`` on the tenant's event stream, in the transaction that disables."""
    await conn.execute(
        "SELECT imgflow_emit_webhook_event($1, $2, 'webhook.disabled', 'disabled', $3)",
        tenant_id,
        webhook_id,
        error,
    )


async def gauges(conn: asyncpg.Connection) -> dict[str, Any]:
    """Pending deliveries by their endpoint's state, and endpoints by state."""
    pending = await conn.fetch(
        """SELECT w.state, count(*) AS n FROM webhook_deliveries AS d
             JOIN webhooks AS w ON w.id = d.webhook_id
            WHERE d.status = 'pending' GROUP BY w.state"""
    )
    endpoints = await conn.fetch("SELECT state, count(*) AS n FROM webhooks GROUP BY state")
    return {
        "pending": {r["state"]: r["n"] for r in pending},
        "endpoints": {r["state"]: r["n"] for r in endpoints},
    }

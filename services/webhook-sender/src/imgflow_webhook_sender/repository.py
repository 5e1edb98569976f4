"""Every query of the webhook sender: claiming due deliveries and probes, recording an
attempt with its endpoint's breaker, capping disabled endpoints' backlogs, and the counts
behind the gauges.

A claim leases its deliveries: ``leased_until`` and ``next_attempt_at`` move past the
attempt's deadline, under FOR UPDATE SKIP LOCKED, so replicas never take the same row, no
lock is held while a receiver answers, and a row of a process that died mid-attempt comes
back once its lease passes. The rows under a lease are the attempts in flight: the limits
per endpoint, host and tenant count them, so they hold across replicas. Claims take one
advisory lock in turn (each sees the leases of the claim before it; a claim is one short
statement). Lock order is always webhook, then delivery (as the API's delete and
re-enable take them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_webhook_sender.breaker import Breaker

_RETURNING = """d.id, d.webhook_id, w.url, w.secret, w.tenant_id, w.host, d.type, d.payload,
                d.attempts, d.created_at, w.state = 'paused' AS probe"""


# pg_advisory_xact_lock key of a claim (any fixed number no other lock of imgflow uses)
CLAIM_LOCK = 0x1F_29_0020


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
                       next_attempt_at = now() + make_interval(secs => $2),
                       leased_until = now() + make_interval(secs => $2)
                  FROM first, webhooks AS w
                 WHERE d.id = first.id AND w.id = d.webhook_id
             RETURNING {_RETURNING}""",
            [h["id"] for h in hooks],
            lease_s,
        )


async def claim(
    conn: asyncpg.Connection, limit: int, lease_s: float, limits: Limits
) -> list[asyncpg.Record]:
    """Probes first, then due deliveries: up to ``limit`` attempts to start, leased for
    ``lease_s``. Claims of all replicas go in turn, so each counts the leases of the last."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", CLAIM_LOCK)
        rows = await claim_probes(conn, limit, lease_s)
        if len(rows) < limit:
            rows += await claim_due(conn, limit - len(rows), lease_s, limits)
        return rows


async def claim_due(
    conn: asyncpg.Connection, limit: int, lease_s: float, limits: Limits
) -> list[asyncpg.Record]:
    """Up to ``limit`` due deliveries of active endpoints, each endpoint's in the order
    they were queued, within the room left per endpoint, tenant and host by the attempts
    in flight (leased rows, whichever replica holds them); tenants take turns (the first
    of each tenant, then the second...), so one tenant's thousands of events never fill
    every slot. Call it through :func:`claim`, which serialises claims."""
    return await conn.fetch(
        f"""WITH busy AS (
                     SELECT w.id, w.tenant_id, w.host, count(*) AS n
                       FROM webhook_deliveries AS d JOIN webhooks AS w ON w.id = d.webhook_id
                      WHERE d.status = 'pending' AND d.leased_until > now()
                      GROUP BY w.id),
                 busy_t AS (SELECT tenant_id AS key, sum(n) AS n FROM busy GROUP BY tenant_id),
                 busy_h AS (SELECT host AS key, sum(n) AS n FROM busy GROUP BY host),
                 hooks AS (
                     SELECT w.id, w.tenant_id, w.host, $2 - coalesce(b.n, 0) AS room
                       FROM webhooks AS w LEFT JOIN busy AS b ON b.id = w.id
                      WHERE w.state = 'active'),
                 candidates AS (
                     SELECT c.id, c.created_at, h.tenant_id, h.host
                       FROM hooks AS h CROSS JOIN LATERAL (
                            SELECT id, created_at FROM webhook_deliveries
                             WHERE webhook_id = h.id AND status = 'pending'
                               AND next_attempt_at <= now()
                             ORDER BY created_at, id LIMIT h.room) AS c
                      WHERE h.room > 0),
                 -- each tenant's turn: its first candidate, second...
                 turns AS (
                     SELECT c.*, row_number() OVER (
                                PARTITION BY c.tenant_id ORDER BY c.created_at, c.id) AS turn
                       FROM candidates AS c),
                 -- the host's room goes by turn (tenants sharing a host alternate)...
                 by_host AS (
                     SELECT t.*, coalesce(bh.n, 0) + row_number() OVER (
                                PARTITION BY t.host ORDER BY t.turn, t.created_at, t.id) AS nh
                       FROM turns AS t LEFT JOIN busy_h AS bh ON bh.key = t.host),
                 -- ...and the tenant's room to what its hosts allow (a delivery its host
                 -- has no room for takes no turn from the tenant's others)
                 ranked AS (
                     SELECT h.id, h.created_at, coalesce(bt.n, 0) + row_number() OVER (
                                PARTITION BY h.tenant_id ORDER BY h.created_at, h.id) AS nt
                       FROM by_host AS h LEFT JOIN busy_t AS bt ON bt.key = h.tenant_id
                      WHERE h.nh <= $4),
                 due AS (
                     SELECT d.id FROM webhook_deliveries AS d JOIN ranked AS r ON r.id = d.id
                      -- rechecked on the row's latest version once locked: a row whose
                      -- attempt was recorded after this snapshot may no longer be due
                      WHERE r.nt <= $3
                        AND d.status = 'pending' AND d.next_attempt_at <= now()
                      ORDER BY r.nt, r.created_at LIMIT $1
                        FOR UPDATE OF d SKIP LOCKED)
            UPDATE webhook_deliveries AS d
               SET attempts = d.attempts + 1,
                   next_attempt_at = now() + make_interval(secs => $5),
                   leased_until = now() + make_interval(secs => $5)
              FROM due, webhooks AS w
             WHERE d.id = due.id AND w.id = d.webhook_id
         RETURNING {_RETURNING}""",
        limit,
        limits.per_endpoint,
        limits.per_tenant,
        limits.per_host,
        lease_s,
    )


async def release(conn: asyncpg.Connection, attempts: list[tuple[UUID, int]]) -> None:
    """Attempts cut short (the process is stopping): their deliveries are due again now
    and their slots free, rather than at the end of their leases."""
    await conn.execute(
        """UPDATE webhook_deliveries AS d SET leased_until = NULL, next_attempt_at = now()
             FROM unnest($1::uuid[], $2::int[]) AS a(id, attempts)
            WHERE d.id = a.id AND d.attempts = a.attempts AND d.status = 'pending'""",
        [a[0] for a in attempts],
        [a[1] for a in attempts],
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
                  next_attempt_at = now() + make_interval(secs => $6), leased_until = NULL,
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
    """A resumed endpoint's waiting deliveries are due now (in their order); those in
    flight keep their leases."""
    await conn.execute(
        """UPDATE webhook_deliveries SET next_attempt_at = now()
            WHERE webhook_id = $1 AND status = 'pending' AND next_attempt_at > now()
              AND (leased_until IS NULL OR leased_until <= now())""",
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


async def cap_disabled_backlogs(conn: asyncpg.Connection, cap: int) -> dict[UUID, int]:
    """Drop the oldest pending deliveries of each disabled endpoint past its newest ``cap``
    (status ``dropped``), counted on the endpoint; how many per endpoint. An endpoint
    another replica is capping (or the tenant re-enabling) is skipped this time."""
    rows = await conn.fetch(
        """WITH hooks AS (
                    SELECT id FROM webhooks WHERE state = 'disabled' FOR UPDATE SKIP LOCKED),
                over AS (
                    SELECT d.id FROM hooks AS h CROSS JOIN LATERAL (
                           SELECT id FROM webhook_deliveries
                            WHERE webhook_id = h.id AND status = 'pending'
                            ORDER BY created_at DESC, id DESC OFFSET $1) AS d),
                dropped AS (
                    UPDATE webhook_deliveries AS d
                       SET status = 'dropped', finished_at = now(), leased_until = NULL,
                           last_error = $2
                      FROM over WHERE d.id = over.id AND d.status = 'pending'
                 RETURNING d.webhook_id),
                counted AS (SELECT webhook_id, count(*) AS n FROM dropped GROUP BY webhook_id)
           UPDATE webhooks AS w SET backlog_dropped = w.backlog_dropped + c.n
             FROM counted AS c WHERE w.id = c.webhook_id
        RETURNING w.id, c.n""",
        cap,
        f"dropped: more than {cap} deliveries waited for the disabled webhook",
    )
    return {r["id"]: r["n"] for r in rows}


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

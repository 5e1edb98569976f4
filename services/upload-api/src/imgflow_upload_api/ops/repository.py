"""What is owed, read from PostgreSQL for /metrics: nothing waits without being seen."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

# Tenants given a series of their own in imgflow_tenant_backlog_jobs; the rest are
# summed under tenant="other", so the metric's cardinality stays bounded.
TOP_TENANTS = 10


@dataclass(frozen=True)
class Backlog:
    outbox: int
    dead_letters_open: int
    oldest_waiting_s: dict[str, float]
    # fair scheduling's backlog in the outbox, by kind of work: jobs and oldest age
    by_kind: dict[str, int] = field(default_factory=dict)
    oldest_by_kind_s: dict[str, float] = field(default_factory=dict)
    # the tenants holding the most of it (TOP_TENANTS of them, then "other")
    by_tenant: dict[str, int] = field(default_factory=dict)


async def read_backlog(conn: asyncpg.Connection) -> Backlog:
    # A stage's wait counts from its outbox row too: fair scheduling keeps the backlog
    # there, and the stage's queued_at starts when the relay hands it to the broker.
    oldest = await conn.fetch(
        """SELECT stage, max(age) AS age FROM (
               SELECT stage, extract(epoch FROM now() - min(queued_at))::float8 AS age
                 FROM image_stages WHERE status IN ('pending', 'running') GROUP BY stage
               UNION ALL
               SELECT payload ->> 'stage', extract(epoch FROM now() - min(created_at))::float8
                 FROM outbox GROUP BY 1) AS waits
            GROUP BY stage"""
    )
    counts = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM outbox) AS outbox,
                  (SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL) AS dead"""
    )
    kinds = await conn.fetch(
        """SELECT kind, count(*) AS n,
                  extract(epoch FROM now() - min(created_at))::float8 AS age
             FROM outbox GROUP BY kind"""
    )
    tenants = await conn.fetch(
        """SELECT t.name, q.n FROM (SELECT tenant_id, count(*) AS n FROM outbox
                                     GROUP BY tenant_id) AS q
             JOIN tenants AS t ON t.id = q.tenant_id
            ORDER BY q.n DESC, t.name"""
    )
    by_tenant = {r["name"]: r["n"] for r in tenants[:TOP_TENANTS]}
    # "other" is always there (0 when nothing else waits), so the metric has a series
    # while the outbox is empty and a dashboard or alert naming it finds it.
    by_tenant.setdefault("other", 0)
    by_tenant["other"] += sum(r["n"] for r in tenants[TOP_TENANTS:])
    return Backlog(
        counts["outbox"],
        counts["dead"],
        {r["stage"]: r["age"] for r in oldest},
        {r["kind"]: r["n"] for r in kinds},
        {r["kind"]: r["age"] for r in kinds},
        by_tenant,
    )

"""Bulk reprocess runs: durable rows that re-drive stages for every image of a tenant (or
of all tenants), a batch at a time.

A batch claims its run's row with FOR UPDATE SKIP LOCKED, so any number of drivers (every
API replica) share a run without doing a batch twice; it resets the next ``batch_size``
images after the run's position (keyset by image id), enqueues their jobs through the
outbox, and moves the position and the counts, all in one transaction. A restart resumes
after the last committed batch.

A stage a worker is running when its batch comes is skipped and counted (``skipped``):
that worker started after the run did or just before, so it already runs the code and
model deployed now; resetting it would only run it twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_contracts.queues import Stage
from imgflow_runtime.db import outbox, resets

log = logging.getLogger(__name__)

ACTIVE = ("running", "paused")
DEFAULT_BATCH_SIZE = 200
# A batch failing this many times in a row (a database error, not an outage) fails the run.
MAX_FAILURES = 3

_SELECT = """SELECT r.*, t.name AS tenant
               FROM reprocess_runs AS r LEFT JOIN tenants AS t ON t.id = r.tenant_id"""


@dataclass(frozen=True)
class Run:
    id: UUID
    tenant: str | None  # None: every tenant
    stages: list[str]
    state: str
    total: int
    done: int
    skipped: int
    batches: int
    batch_size: int
    position: UUID | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Run:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "tenant": self.tenant,
            "stages": self.stages,
            "state": self.state,
            "done": self.done,
            "skipped": self.skipped,
            "total": self.total,
            "reason": self.reason,
        }


class UnknownTenant(Exception):
    pass


async def create_run(
    conn: asyncpg.Connection, tenant: str | None, stages: Sequence[Stage], batch_size: int
) -> Run:
    """A new run over ``tenant``'s images (None: every tenant's); raises UnknownTenant."""
    async with conn.transaction():
        tenant_id = None
        if tenant is not None:
            tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", tenant)
            if tenant_id is None:
                raise UnknownTenant(tenant)
        total = await conn.fetchval(
            """SELECT count(*) FROM images
                WHERE ($1::uuid IS NULL OR tenant_id = $1) AND deleting_since IS NULL""",
            tenant_id,
        )
        run_id = uuid.uuid4()
        await conn.execute(
            """INSERT INTO reprocess_runs (id, tenant_id, stages, batch_size, total)
               VALUES ($1, $2, $3, $4, $5)""",
            run_id,
            tenant_id,
            list(dict.fromkeys(s.value for s in stages)),
            batch_size,
            total,
        )
    found = await get_run(conn, run_id)
    assert found is not None
    return found


async def get_run(conn: asyncpg.Connection, run_id: UUID) -> Run | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE r.id = $1", run_id)
    return Run.from_row(row) if row is not None else None


async def any_active(conn: asyncpg.Connection) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM reprocess_runs WHERE state = ANY($1::text[]))",
            list(ACTIVE),
        )
    )


async def pause_running(conn: asyncpg.Connection, reason: str) -> None:
    """Mark running runs paused (a run in a batch right now is left to its driver)."""
    await conn.execute(
        """UPDATE reprocess_runs SET state = 'paused', reason = $1, updated_at = now()
            WHERE id IN (SELECT id FROM reprocess_runs WHERE state = 'running'
                         FOR UPDATE SKIP LOCKED)""",
        reason,
    )


async def drive_batch(
    conn: asyncpg.Connection, trace_context: dict[str, str] | None = None
) -> Run | None:
    """Claim the oldest unfinished run no other driver holds, and do its next batch;
    the run as committed, or None when there was none to claim."""
    async with conn.transaction():
        run = await conn.fetchrow(
            """SELECT id, tenant_id, stages, position, batch_size FROM reprocess_runs
                WHERE state = ANY($1::text[])
                ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED""",
            list(ACTIVE),
        )
        if run is None:
            return None
        try:
            async with conn.transaction():  # a savepoint: a failed batch leaves the claim
                await _batch(conn, run, trace_context)
        except asyncpg.PostgresError as exc:
            log.exception("reprocess run %s: batch failed", run["id"])
            await conn.execute(
                """UPDATE reprocess_runs
                      SET failures = failures + 1, reason = $2, updated_at = now(),
                          state = CASE WHEN failures + 1 >= $3 THEN 'failed' ELSE state END,
                          finished_at = CASE WHEN failures + 1 >= $3 THEN now() END
                    WHERE id = $1""",
                run["id"],
                f"{type(exc).__name__}: {exc}"[:2000],
                MAX_FAILURES,
            )
    return await get_run(conn, run["id"])


async def _batch(
    conn: asyncpg.Connection, run: asyncpg.Record, trace_context: dict[str, str] | None
) -> None:
    stages = [Stage(s) for s in run["stages"]]
    # Key-share: a delete waits for this batch (or this batch no longer sees the image);
    # an image being deleted (marked, its objects going) is passed over.
    images = await conn.fetch(
        """SELECT id, object_key FROM images
            WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::uuid IS NULL OR id > $2)
              AND deleting_since IS NULL
            ORDER BY id LIMIT $3 FOR KEY SHARE""",
        run["tenant_id"],
        run["position"],
        run["batch_size"],
    )
    running = await resets.running_stages(conn, [r["id"] for r in images], stages)
    ready = [(r["id"], r["object_key"]) for r in images if r["id"] not in running]
    # Bulk work: new uploads' jobs go first (the relay's order, migration 0015).
    await resets.reset_images(conn, ready, stages, trace_context, outbox.BULK)
    finished = len(images) < run["batch_size"]
    await conn.execute(
        """UPDATE reprocess_runs
              SET position = coalesce($2, position), done = done + $3, skipped = skipped + $4,
                  batches = batches + 1, failures = 0, updated_at = now(),
                  state = CASE WHEN $5 THEN 'finished' ELSE 'running' END,
                  reason = NULL,
                  finished_at = CASE WHEN $5 THEN now() END,
                  -- uploads and deletes during the run move the total; at the end it
                  -- is what the run went through
                  total = CASE WHEN $5 THEN done + skipped + $3 + $4
                               ELSE greatest(total, done + skipped + $3 + $4) END
            WHERE id = $1""",
        run["id"],
        images[-1]["id"] if images else None,
        len(ready),
        len(running),
        finished,
    )

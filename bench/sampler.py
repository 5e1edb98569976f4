"""Samples the running system every ~0.5 s: queue depths (Redis LLEN, as the API's
imgflow_queue_depth gauge reads them), the outbox, completions per stage (PostgreSQL),
and the CPU and memory of every process tree.

It also says when the run is over: every uploaded image has every stage settled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as redis

from bench.processes import ProcessTable, ProcessTree, machine_busy_s, own_cpu_s
from imgflow_contracts.queues import Stage

INTERVAL_S = 0.5

# Per stage: done, failed; and images whose three stages are all settled.
_COMPLETIONS = """
SELECT stage,
       count(*) FILTER (WHERE status = 'done') AS done,
       count(*) FILTER (WHERE status = 'failed') AS failed
  FROM image_stages
 WHERE image_id = ANY($1::uuid[])
 GROUP BY stage
"""
_SETTLED_IMAGES = """
SELECT count(*) FROM (
    SELECT image_id FROM image_stages
     WHERE image_id = ANY($1::uuid[])
     GROUP BY image_id
    HAVING bool_and(status IN ('done', 'failed'))
) AS settled
"""


@dataclass
class Sample:
    t_s: float
    uploaded: int
    queue_depth: dict[str, int]
    outbox: int
    done: dict[str, int]
    failed: dict[str, int]
    settled_images: int
    # Cumulative CPU seconds per process tree, of this process, and of the whole machine.
    cpu_s: dict[str, float]
    bench_cpu_s: float
    machine_cpu_s: float
    # Scheduling delay of this sample: a starved event loop would show here.
    lag_s: float


@dataclass
class Sampler:
    database_url: str
    broker_url: str
    trees: Mapping[str, ProcessTree]
    t0: float
    image_ids: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    # Set after the first sample (the "before" of every CPU figure), when the uploads are
    # all answered, and when every uploaded image has every stage settled.
    started: asyncio.Event = field(default_factory=asyncio.Event)
    uploads_finished: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    _table: ProcessTable = field(default_factory=ProcessTable)

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set."""
        conn = await asyncpg.connect(self.database_url)
        broker = redis.Redis.from_url(self.broker_url)
        try:
            due = time.perf_counter()
            while True:
                sample = await self._sample(conn, broker, lag_s=time.perf_counter() - due)
                self.samples.append(sample)
                self.started.set()
                if self.uploads_finished.is_set() and sample.settled_images == len(self.image_ids):
                    self.settled.set()
                due += INTERVAL_S
                try:
                    await asyncio.wait_for(stop.wait(), max(0.0, due - time.perf_counter()))
                    return
                except TimeoutError:
                    pass
        finally:
            await conn.close()
            await broker.aclose()

    async def _sample(self, conn: asyncpg.Connection, broker: redis.Redis, lag_s: float) -> Sample:
        t_s = time.perf_counter() - self.t0
        ids = list(self.image_ids)
        async with broker.pipeline(transaction=False) as pipe:
            for stage in Stage:
                pipe.llen(stage.queue)
            depths = await pipe.execute()
        # psutil reads /proc: on a thread, so the upload clients on this loop keep going.
        cpu_s = await asyncio.to_thread(self._sample_processes)
        rows = await conn.fetch(_COMPLETIONS, ids)
        settled = await conn.fetchval(_SETTLED_IMAGES, ids)
        outbox = await conn.fetchval("SELECT count(*) FROM outbox")
        done = {stage.value: 0 for stage in Stage} | {r["stage"]: r["done"] for r in rows}
        failed = {stage.value: 0 for stage in Stage} | {r["stage"]: r["failed"] for r in rows}
        return Sample(
            t_s=t_s,
            uploaded=len(ids),
            queue_depth={s.queue: int(d) for s, d in zip(Stage, depths, strict=True)},
            outbox=int(outbox),
            done=done,
            failed=failed,
            settled_images=int(settled),
            cpu_s=cpu_s,
            bench_cpu_s=own_cpu_s(),
            machine_cpu_s=machine_busy_s(),
            lag_s=lag_s,
        )

    def _sample_processes(self) -> dict[str, float]:
        return {name: tree.sample(self._table).cpu_s for name, tree in self.trees.items()}

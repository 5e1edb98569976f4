"""Drive one end-to-end run against a started LocalSystem and collect what happened.

First a probe: a few uploads from one client on the idle system, each answered and
processed before the next is sent. That is the latency of an upload itself (what
ADR-0012's "~500 ms" describes) and of the pipeline (201 to every stage done), and it
warms every worker up. Then the
flood: every image from concurrent clients while sampling the system, until every image
has every stage settled (done or failed); then the stage rows are read. The figures are
made from this report by bench/e2e.py; the smoke test uses the same path.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.processes import ProcessTree, TreeUsage, own_cpu_s
from bench.sampler import Sample, Sampler
from bench.stage_rows import StageRow, read_stage_rows
from bench.uploads import Upload, upload_all
from imgflow_localstack.system import LocalSystem

# The imgflow processes, then the servers they lean on.
SERVICES = ("api", "thumbnailer", "hasher", "deduper", "flower")
SERVERS = ("postgres", "valkey", "seaweedfs")


@dataclass
class E2EReport:
    clients: int
    concurrency: dict[str, int]
    # One client, one upload at a time, on the idle system.
    probe_uploads: list[Upload]
    # Per probe upload: seconds from its 201 to its last stage finishing (idle system).
    ready_s: list[float]
    # Their stage rows, in seconds after each one's 201.
    probe_stage_rows: list[StageRow]
    uploads: list[Upload]
    stage_rows: list[StageRow]
    samples: list[Sample]
    usage: dict[str, TreeUsage]
    # Wall time of the upload phase, and this process's CPU seconds during it.
    upload_wall_s: float
    bench_upload_cpu_s: float
    # Whether every image settled before the deadline.
    settled: bool
    load_before: tuple[float, float, float]

    @property
    def image_ids(self) -> list[str]:
        return [u.image_id for u in self.uploads if u.image_id is not None]

    @property
    def clear_s(self) -> float:
        """From the first upload starting to the last stage of the last image finishing."""
        finished = [r.finished_s for r in self.stage_rows if r.finished_s is not None]
        return max(finished) if finished else float("nan")

    @property
    def wall_s(self) -> float:
        return self.samples[-1].t_s - self.samples[0].t_s

    @property
    def machine_cpu_s(self) -> float:
        return self.samples[-1].machine_cpu_s - self.samples[0].machine_cpu_s

    @property
    def bench_cpu_s(self) -> float:
        return self.samples[-1].bench_cpu_s - self.samples[0].bench_cpu_s


def process_trees(system: LocalSystem) -> dict[str, ProcessTree]:
    pids: dict[str, int | None] = {name: system.service(name).child.pid for name in SERVICES}
    stack = system.stack
    for name, server in zip(SERVERS, (stack.postgres, stack.valkey, stack.s3), strict=True):
        pids[name] = server.child.pid if server.child is not None else None
    return {name: ProcessTree(name, pid) for name, pid in pids.items() if pid is not None}


def measure(
    system: LocalSystem,
    paths: Sequence[Path],
    clients: int,
    probe_paths: Sequence[Path] = (),
    timeout_s: float = 1800,
) -> E2EReport:
    """Upload ``probe_paths`` one at a time, then ``paths`` from ``clients`` at once, to the
    running ``system``, waiting each time until all are processed."""
    return asyncio.run(_drive(system, paths, clients, probe_paths, timeout_s))


async def _drive(
    system: LocalSystem,
    paths: Sequence[Path],
    clients: int,
    probe_paths: Sequence[Path],
    timeout_s: float,
) -> E2EReport:
    env = system.env
    probe_uploads, ready_s, probe_rows = (
        await _probe(system, probe_paths, timeout_s) if probe_paths else ([], [], [])
    )
    load_before = os.getloadavg()
    trees = process_trees(system)
    t0, t0_epoch = time.perf_counter(), time.time()
    sampler = Sampler(env["IMGFLOW_DATABASE_URL"], env["IMGFLOW_BROKER_URL"], trees, t0)
    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop), name="sampler")
    try:
        # The first sample is the "before" of every CPU figure.
        await _first_of(sampler.started.wait(), sampling)
        cpu_before = own_cpu_s()
        uploads = await upload_all(
            system.api_url, system.auth_headers, paths, clients, t0, sampler.image_ids.append
        )
        upload_wall_s = time.perf_counter() - t0
        bench_upload_cpu_s = own_cpu_s() - cpu_before
        sampler.uploads_finished.set()
        try:
            await _first_of(asyncio.wait_for(sampler.settled.wait(), timeout_s), sampling)
            settled = True
        except TimeoutError:
            settled = False
    finally:
        stop.set()
        await sampling
    rows = await read_stage_rows(env["IMGFLOW_DATABASE_URL"], sampler.image_ids, t0_epoch)
    return E2EReport(
        clients=clients,
        concurrency=_concurrency(system),
        probe_uploads=probe_uploads,
        ready_s=ready_s,
        probe_stage_rows=probe_rows,
        uploads=uploads,
        stage_rows=rows,
        samples=sampler.samples,
        usage={name: tree.usage() for name, tree in trees.items()},
        upload_wall_s=upload_wall_s,
        bench_upload_cpu_s=bench_upload_cpu_s,
        settled=settled,
        load_before=load_before,
    )


async def _probe(
    system: LocalSystem, paths: Sequence[Path], timeout_s: float
) -> tuple[list[Upload], list[float], list[StageRow]]:
    """One client, one upload at a time, each processed before the next is sent: the
    uploads; each image's time from its 201 to its last stage finishing (`ready`); and
    their stage rows, timed from each one's 201."""
    env = system.env
    uploads: list[Upload] = []
    ready_s: list[float] = []
    rows: list[StageRow] = []
    conn = await asyncpg.connect(env["IMGFLOW_DATABASE_URL"])
    try:
        for path in paths:
            (upload,) = await upload_all(
                system.api_url, system.auth_headers, [path], 1, time.perf_counter()
            )
            answered = time.time()  # the 201 has just arrived
            uploads.append(upload)
            if upload.image_id is None:
                continue
            finished = await asyncio.wait_for(_settled_at(conn, upload.image_id), timeout_s)
            ready_s.append(finished - answered)
            rows += await read_stage_rows(env["IMGFLOW_DATABASE_URL"], [upload.image_id], answered)
    finally:
        await conn.close()
    return uploads, ready_s, rows


_LAST_FINISHED = """
SELECT bool_and(status IN ('done', 'failed')) AS settled,
       extract(epoch FROM max(finished_at))::float8 AS finished
  FROM image_stages WHERE image_id = $1::uuid
"""


async def _settled_at(conn: asyncpg.Connection, image_id: str) -> float:
    """Epoch at which the image's last stage finished, once every stage has (PostgreSQL's
    own timestamp: the polling interval does not count)."""
    while True:
        row = await conn.fetchrow(_LAST_FINISHED, image_id)
        if row is not None and row["settled"]:
            return float(row["finished"])
        await asyncio.sleep(0.01)


async def _first_of(awaitable, sampling: asyncio.Task[None]) -> None:  # type: ignore[no-untyped-def]
    """Await ``awaitable``, but raise at once if the sampler failed meanwhile."""
    waiting = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({waiting, sampling}, return_when=asyncio.FIRST_COMPLETED)
    if waiting in done:
        waiting.result()
        return
    waiting.cancel()
    sampling.result()  # raises the sampler's error
    raise RuntimeError("the sampler stopped before the run ended")


def _concurrency(system: LocalSystem) -> dict[str, int]:
    """Pool processes per worker, read from the command lines the system started."""
    found: dict[str, int] = {}
    for spec in system.specs:
        argv = list(spec.argv)
        if "--concurrency" in argv:
            found[spec.name] = int(argv[argv.index("--concurrency") + 1])
    return found

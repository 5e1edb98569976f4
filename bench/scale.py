"""Scale: what a duplicate check, a listing and group upkeep cost as a tenant grows.

The whole system runs (`make run`'s processes on free ports); a synthetic library is
loaded into its PostgreSQL with COPY (bench/scale_library.py: a big tenant, and small
tenants of 100 images sharing its HNSW index), then at each size of the big tenant:

- the duplicate check, in this process against that PostgreSQL with the deduper's own
  functions (everything but the inference, which does not depend on the library):
  store, candidate search, record, group upkeep; wall p50/p99 and CPU per check (this
  process + its PostgreSQL backend, from /proc), the vector search and the pHash search
  also timed alone; half the probes are copies landing in a burst (a large component,
  where group upkeep is the most work), half new photos; group events per probe;
- planted-copy recall: a copy (cosine drawn from the measured copy spread, at or above
  the threshold) of a loaded image, found by the vector search (the top 20) or not, in
  the big tenant and in small tenants (filtered search, ``hnsw.iterative_scan``);
- order independence: two photos with 30 copies each, checked in two orders (deleted in
  between): the same groups or not;
- real uploads (12 MP JPEGs) through the API and workers: the dedupe stage's run time;
- the API: GET /v1/images first page and 10,000 deep, GET /v1/duplicate-groups, an
  image's view: p50/p99 over 50 requests each, and the CPU a request costs in the API
  process and in PostgreSQL (wall times on a loaded machine are mostly the wait for a
  core);
- storage: bytes per image by table and index, HNSW build time and the backend's peak
  memory, and (at the first size) a halfvec index beside it: size, build time,
  planted-copy recall.

    make bench ARGS="--only scale"                       # 10k and 100k
    make bench ARGS="--only scale --vectors 10000,100000,1000000"
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import httpx
import numpy as np
import psutil

from bench.images import FULL, SMALL, ensure_images
from bench.options import BenchOptions
from bench.results import Measurement, Suite, Table
from bench.scale_library import (
    COPY_TO_CENTRE,
    COSINE_THRESHOLD,
    DIM,
    MODEL,
    Library,
    add_small_tenants,
    around,
    draw,
    grow_big_tenant,
    loading_connection,
    near_phash,
)
from bench.stats import percentile
from bench.uploads import upload_all
from imgflow_deduper import repository as repo
from imgflow_deduper.checks import CheckPolicy, judge
from imgflow_deduper.decision import Thresholds
from imgflow_deduper.settings import DedupeSettings
from imgflow_localstack.services import API
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.db.duplicate_groups import regroup_around, regroup_dirty
from imgflow_runtime.db.tenants import tenant_for_key
from imgflow_upload_api.paging import DEFAULT_LIMIT

T = TypeVar("T")
_S = DedupeSettings.model_fields
SPACE = repo.EmbeddingSpace(MODEL, DIM)
LIMITS = repo.SearchLimits(
    candidates=_S["dedupe_candidates"].default,
    phash_distance=max(
        _S["dedupe_phash_max_distance"].default, _S["dedupe_combined_phash_distance"].default
    ),
    ef_search=_S["dedupe_hnsw_ef_search"].default,
)
THRESHOLDS = Thresholds(
    cosine=_S["dedupe_cosine_threshold"].default,
    phash_distance=_S["dedupe_phash_max_distance"].default,
    combined_cosine=_S["dedupe_combined_cosine"].default,
    combined_phash_distance=_S["dedupe_combined_phash_distance"].default,
)
HNSW = "image_embeddings_efficientnet_lite0_hnsw"
HNSW_SQL = f"""CREATE INDEX {HNSW} ON image_embeddings
    USING hnsw ((embedding::vector({DIM})) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE model = '{MODEL}'"""
# The pHash index (migration 0014), dropped while loading and rebuilt like the
# embeddings' (HNSW inserts row by row are many times slower than a build); the
# expression must stay the migration's, or the deduper's ORDER BY no longer uses it.
PHASH = "images_phash_hnsw"
PHASH_SQL = f"""CREATE INDEX {PHASH} ON images
    USING hnsw ((phash::bit(64)) bit_hamming_ops) WHERE phash IS NOT NULL"""
HALFVEC = "scale_bench_halfvec_hnsw"
HALFVEC_SQL = f"""CREATE INDEX {HALFVEC} ON image_embeddings
    USING hnsw ((embedding::halfvec({DIM})) halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE model = '{MODEL}'"""
SMALL_TENANTS, SMALL_IMAGES = 100, 100
PROBES, RECALL_QUERIES, API_REQUESTS, UPLOADS = 60, 200, 50, 6
ORDER_PHOTOS, ORDER_COPIES = 2, 30


def _ms(values: list[float], p: float) -> float:
    return round(percentile([v * 1000 for v in values], p), 2) if values else float("nan")


class BackendCpu:
    """CPU seconds of one PostgreSQL backend (the connection's), read from /proc."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)

    def now(self) -> float:
        t = self.process.cpu_times()
        return t.user + t.system


@dataclass
class CheckTimes:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    vector: list[float] = field(default_factory=list)
    phash: list[float] = field(default_factory=list)
    candidates: list[float] = field(default_factory=list)
    record: list[float] = field(default_factory=list)
    upkeep: list[float] = field(default_factory=list)
    upkeep_cpu: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)


async def _timed(work: Awaitable[T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await work
    return result, time.perf_counter() - started


async def _insert_image(conn: asyncpg.Connection, tenant: UUID, phash: int) -> UUID:
    image_id = uuid4()
    await conn.execute(
        """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256,
                               format, width, height, phash)
           VALUES ($1, $2, $3, 'image/jpeg', 4200000, md5($3) || md5($3 || 'x'), 'JPEG',
                   4000, 3000, $4)""",
        image_id,
        tenant,
        f"originals/{image_id}",
        phash,
    )
    return image_id


async def _search_alone(
    conn: asyncpg.Connection, sql: str, *args: Any
) -> tuple[list[asyncpg.Record], float]:
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', $1, true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            str(LIMITS.ef_search),
        )
        return await _timed(conn.fetch(sql, *args))


async def _last_event(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM image_events"))


async def check_once(
    conn: asyncpg.Connection,
    cpu: BackendCpu,
    tenant: UUID,
    vector: np.ndarray,
    phash: int,
    times: CheckTimes | None,
) -> tuple[UUID, int]:
    """The deduper's check of a new image (checks._search_and_record, unrolled to time
    each part); returns the image and its group events."""
    image_id = await _insert_image(conn, tenant, phash)
    subject = repo.Subject(image_id, tenant, phash)
    mark = await _last_event(conn)
    as_list = vector.astype(np.float32).tolist()
    _, vector_s = await _search_alone(
        conn, repo.nearest_sql(SPACE), image_id, tenant, as_list, LIMITS.candidates
    )
    _, phash_s = await _search_alone(
        conn,
        repo.phash_nearest_sql() + " AND $3::text IS NULL",  # every parameter typed
        image_id,
        tenant,
        None,
        LIMITS.candidates,
        phash,
        LIMITS.phash_distance,
    )
    cpu0, own0, wall0 = cpu.now(), time.process_time(), time.perf_counter()
    await repo.store_embedding(conn, subject, SPACE, vector)
    candidates, candidates_s = await _timed(
        repo.find_candidates(conn, subject, SPACE, vector, LIMITS, True)
    )
    # No geometric probe: the bench's images have no pixels (the check as without one)
    judged = judge(image_id, candidates, CheckPolicy(SPACE, LIMITS, THRESHOLDS), None)
    (_, lost), record_s = await _timed(
        repo.record_check(conn, subject, judged.duplicates, "sha256+cnn+phash", False)
    )
    cpu1, own1 = cpu.now(), time.process_time()
    _, upkeep_s = await _timed(regroup_around(conn, tenant, [image_id, *lost]))
    cpu2, own2, wall2 = cpu.now(), time.process_time(), time.perf_counter()
    events = int(
        await conn.fetchval(
            "SELECT count(*) FROM image_events WHERE id > $1 AND group_id IS NOT NULL"
            " AND tenant_id = $2",
            mark,
            tenant,
        )
    )
    if times is not None:
        times.wall.append(wall2 - wall0)
        times.cpu.append((cpu2 - cpu0) + (own2 - own0))
        times.vector.append(vector_s)
        times.phash.append(phash_s)
        times.candidates.append(candidates_s)
        times.record.append(record_s)
        times.upkeep.append(upkeep_s)
        times.upkeep_cpu.append((cpu2 - cpu1) + (own2 - own1))
        times.events.append(events)
    return image_id, events


async def probe_checks(conn: asyncpg.Connection, library: Library, seed: int) -> CheckTimes:
    rng = np.random.default_rng(seed)
    cpu = BackendCpu(await conn.fetchval("SELECT pg_backend_pid()"))
    times = CheckTimes()
    for k in range(PROBES + 4):
        if k % 2 == 0:  # a copy landing in a burst: a large component's group upkeep
            burst = library.bursts[int(rng.integers(len(library.bursts)))]
            f = int(rng.integers(len(burst.frames)))
            vector = around(burst.frames[f], draw(COPY_TO_CENTRE, rng, 1), rng)[0]
            phash = near_phash(burst.frame_phashes[f], int(rng.integers(0, 9)), rng)
        else:  # a new photo
            _, v, _ = library.singles[library.big][
                int(rng.integers(len(library.singles[library.big])))
            ]
            vector = around(v, np.array([0.85]), rng)[0]  # a cluster-mate, not a copy
            phash = int(rng.integers(-(2**63), 2**63 - 1))
        # the first 4: warm-up (plans, caches), not counted
        await check_once(conn, cpu, library.big, vector, phash, times if k >= 4 else None)
    return times


@dataclass
class Recall:
    found: int = 0
    asked: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def value(self) -> float:
        return self.found / self.asked if self.asked else float("nan")


async def planted_recall(
    conn: asyncpg.Connection,
    library: Library,
    tenants: list[UUID],
    queries: int,
    seed: int,
    halfvec: bool = False,
) -> Recall:
    """Is a copy of a loaded image among the vector search's top 20 in its tenant?"""
    rng = np.random.default_rng(seed)
    copy_cosines = [q for q in COPY_TO_CENTRE if q[1] >= COSINE_THRESHOLD]
    pool = [(t, s) for t in tenants for s in library.singles.get(t, [])]
    sql = repo.nearest_sql(SPACE)
    if halfvec:
        sql = sql.replace(f"::vector({DIM})", f"::halfvec({DIM})")
    out = Recall()
    for k in range(queries):
        tenant, (image, v, _) = pool[int(rng.integers(len(pool)))]
        # re-spread the measured copy cosines over those the decision accepts
        quantiles = [
            (100 * i / (len(copy_cosines) - 1), c) for i, (_, c) in enumerate(copy_cosines)
        ]
        copy = around(v, draw(quantiles, rng, 1), rng)[0]
        rows, took = await _search_alone(
            conn, sql, uuid4(), tenant, copy.tolist(), LIMITS.candidates
        )
        if k >= 3:
            out.asked += 1
            out.found += image in {r["id"] for r in rows}
            out.latencies.append(took)
    return out


async def order_independence(conn: asyncpg.Connection, library: Library, seed: int) -> bool:
    """Two photos' copies (more than a search returns) checked in two orders: the same
    groups (as labels)?"""
    rng = np.random.default_rng(seed)
    cpu = BackendCpu(await conn.fetchval("SELECT pg_backend_pid()"))
    items = []
    for p in range(ORDER_PHOTOS):
        _, v, phash = library.singles[library.big][p]
        centre = around(v, np.array([0.5]), rng)[0]  # far from anything loaded
        for c, vec in enumerate(around(centre, draw(COPY_TO_CENTRE, rng, ORDER_COPIES), rng)):
            items.append((f"{p}-{c}", vec, near_phash(phash, int(rng.integers(0, 9)), rng)))
    outcomes = []
    for order_seed in (1, 2):
        order = list(items)
        random.Random(order_seed).shuffle(order)
        ids = {}
        for label, vec, phash in order:
            ids[label], _ = await check_once(conn, cpu, library.big, vec, phash, None)
        by_id = {i: label for label, i in ids.items()}
        rows = await conn.fetch(
            """SELECT array_agg(image_id) AS members FROM duplicate_group_members
                WHERE image_id = ANY($1::uuid[]) GROUP BY group_id""",
            list(ids.values()),
        )
        outcomes.append({frozenset(by_id[m] for m in r["members"]) for r in rows})
        await conn.execute("DELETE FROM images WHERE id = ANY($1::uuid[])", list(ids.values()))
        await regroup_dirty(conn, 1000)
    return outcomes[0] == outcomes[1]


class ReadCpu:
    """CPU seconds of the API process and of PostgreSQL's client backends, so a read's
    cost is seen apart from the wait for a core on a loaded machine, which wall times
    include. Both also count what runs beside the reads for as long as they take: the
    API's background loops (``idle_rate``) and any other connection's work (workers still
    finishing an upload's jobs), so they are upper bounds."""

    def __init__(self, api_pid: int, conn: asyncpg.Connection) -> None:
        self.api = psutil.Process(api_pid)
        self.conn = conn

    async def _backends(self) -> dict[int, float]:
        pids = await self.conn.fetch(
            """SELECT pid FROM pg_stat_activity
                WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"""
        )
        out = {}
        for row in pids:
            try:
                t = psutil.Process(row["pid"]).cpu_times()
            except psutil.Error:
                continue  # closed meanwhile
            out[row["pid"]] = t.user + t.system
        return out

    async def idle_rate(self, seconds: float = 3.0) -> float:
        """The API process's CPU seconds a second with no request (its background loops:
        relay, queue depths, sweeps), which each read's CPU counts for its wall time."""
        t0, w0 = self.api.cpu_times(), time.perf_counter()
        await asyncio.sleep(seconds)
        t1 = self.api.cpu_times()
        return ((t1.user + t1.system) - (t0.user + t0.system)) / (time.perf_counter() - w0)

    async def now(self) -> tuple[float, dict[int, float]]:
        t = self.api.cpu_times()
        return t.user + t.system, await self._backends()

    async def since(self, start: tuple[float, dict[int, float]]) -> tuple[float, float]:
        """(API, PostgreSQL) CPU seconds since ``start``; a backend opened meanwhile
        counts from zero."""
        api, backends = await self.now()
        return api - start[0], sum(t - start[1].get(pid, 0.0) for pid, t in backends.items())


async def api_latencies(
    system: LocalSystem, library: Library, seed: int
) -> tuple[dict[str, list[float]], dict[str, tuple[float, float]], float]:
    """Each read's wall times, its CPU seconds per request (API, PostgreSQL), and the
    API's idle CPU rate (seconds a second)."""
    rng = random.Random(seed)
    out: dict[str, list[float]] = {}
    cpu: dict[str, tuple[float, float]] = {}
    conn = await asyncpg.connect(system.env["IMGFLOW_DATABASE_URL"])
    clock = ReadCpu(system.service(API).child.pid, conn)
    idle = await clock.idle_rate()
    async with httpx.AsyncClient(
        base_url=system.api_url, headers=system.auth_headers, timeout=60
    ) as client:

        async def timed(name: str, urls: Callable[[], str], **params: Any) -> None:
            started_cpu = await clock.now()
            for k in range(API_REQUESTS + 3):
                started = time.perf_counter()
                r = await client.get(urls(), params=params)
                took = time.perf_counter() - started
                r.raise_for_status()
                if k >= 3:
                    out.setdefault(name, []).append(took)
            api_s, pg_s = await clock.since(started_cpu)
            cpu[name] = (api_s / (API_REQUESTS + 3), pg_s / (API_REQUESTS + 3))

        await timed("GET /v1/images (first page)", lambda: "/v1/images")
        # 10,000 deep, or in a smaller tenant the deepest full page: at 10k, the page
        # 10,000 deep was the last one, near empty, and made every larger size look slower
        # (EXPLAIN: 3 buffers for 0 rows against 206 for 50; the keyset seek itself is one
        # index search at any depth).
        depth = min(10_000, (library.loaded - 4 * DEFAULT_LIMIT) // 200 * 200)
        cursor, skipped = None, 0
        while skipped < depth:
            params = {"limit": 200} | ({"cursor": cursor} if cursor else {})
            page = (await client.get("/v1/images", params=params)).json()
            skipped += len(page["items"])
            cursor = page.get("next_cursor")
            if cursor is None:
                break
        if cursor:
            await timed("GET /v1/images (10,000 deep)", lambda: "/v1/images", cursor=cursor)
        await timed("GET /v1/duplicate-groups", lambda: "/v1/duplicate-groups")

        def grouped_image() -> str:
            burst = library.bursts[rng.randrange(len(library.bursts))]
            return f"/v1/images/{burst.ids[rng.randrange(len(burst.ids))]}"

        await timed("GET /v1/images/{id} (a grouped image)", grouped_image)
    await conn.close()
    return out, cpu, idle


async def dedupe_stage_runs(system: LocalSystem, paths: list[Path]) -> list[float]:
    """Upload one at a time through the API; each image's dedupe stage run time."""
    conn = await asyncpg.connect(system.env["IMGFLOW_DATABASE_URL"])
    runs = []
    try:
        for path in paths:
            (upload,) = await upload_all(
                system.api_url, system.auth_headers, [path], 1, time.perf_counter()
            )
            if upload.image_id is None:
                raise RuntimeError(f"upload refused: {upload.error}")
            while True:
                row = await conn.fetchrow(
                    """SELECT bool_and(status IN ('done', 'failed')) AS settled,
                              max(extract(epoch FROM finished_at - started_at))
                                FILTER (WHERE stage = 'dedupe') AS run
                         FROM image_stages WHERE image_id = $1::uuid""",
                    upload.image_id,
                )
                if row["settled"]:
                    runs.append(float(row["run"]))
                    break
                await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return runs


class PeakRss:
    """The peak resident memory of one process, sampled on a thread (an index build)."""

    def __init__(self, pid: int) -> None:
        self.process, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def build_index(conn: asyncpg.Connection, sql: str) -> tuple[float, int, float]:
    """Build time (s), the backend's peak RSS (bytes), the index's size (MB)."""
    name = sql.split()[2]
    await conn.execute(f"DROP INDEX IF EXISTS {name}")
    with PeakRss(await conn.fetchval("SELECT pg_backend_pid()")) as rss:
        _, took = await _timed(conn.execute(sql))
    size = await conn.fetchval("SELECT pg_relation_size($1::regclass) / 1e6", name)
    return took, rss.peak, float(size)


STORAGE_SQL = """
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes
  FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND c.relkind = 'r'
   AND c.relname IN ('images', 'image_stages', 'renditions', 'duplicate_checks',
                     'image_embeddings', 'image_view_embeddings', 'duplicate_pairs',
                     'duplicate_groups', 'duplicate_group_members', 'image_events')
"""


async def storage(conn: asyncpg.Connection) -> tuple[dict[str, float], int, float]:
    """Bytes per image by table (with its indexes and TOAST), the image count, and the
    bytes of one stored sub-view set (5 views) from real uploads."""
    images = int(await conn.fetchval("SELECT count(*) FROM images"))
    rows = await conn.fetch(STORAGE_SQL)
    per = {r["name"]: r["bytes"] / images for r in rows}
    view_rows = int(await conn.fetchval("SELECT count(*) FROM image_view_embeddings"))
    view_bytes = float(
        await conn.fetchval(
            "SELECT coalesce(avg(pg_column_size(v.*)), 0) FROM image_view_embeddings AS v"
        )
    )
    return per, view_rows, view_bytes * 5


@dataclass
class SizeResult:
    size: int
    load_s: float
    build: tuple[float, int, float]
    halfvec: tuple[float, int, float] | None
    checks: CheckTimes
    recall_big: Recall
    recall_small: Recall
    recall_half: Recall | None
    same_order: bool | None
    api: dict[str, list[float]]
    dedupe_runs: list[float]
    storage: dict[str, float]
    images_total: int
    view_set_bytes: float
    phash_build_s: float = 0.0
    build_settings: str = ""
    api_cpu: dict[str, tuple[float, float]] = field(default_factory=dict)  # (API, PostgreSQL)
    api_idle_cpu: float = 0.0  # the API's CPU seconds a second with no request


def build_settings(size: int) -> tuple[str, int]:
    """maintenance_work_mem and parallel workers for an HNSW build at ``size`` images.

    The build is fast while the graph fits maintenance_work_mem (measured: 902 MB of index
    at 110k vectors; ~12 GB at 1M), and many times slower once it spills; but not more
    than 60 % of this machine's memory. pgvector builds in parallel (0.6+): one worker
    per core beyond the leader's, at most 7 (PostgreSQL's max_parallel_workers default
    is 8).
    """
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    mem_gb = max(1, min(12 * size // 1_000_000 + 1, int(ram_gb * 0.6)))
    workers = max(1, min(7, (os.cpu_count() or 2) - 1))
    return f"{mem_gb}GB", workers


async def measure_size(
    system: LocalSystem,
    library: Library,
    size: int,
    upload_paths: list[Path],
    do_order: bool,
    do_halfvec: bool,
) -> SizeResult:
    url = system.env["IMGFLOW_DATABASE_URL"]
    loader = await loading_connection(url)
    try:
        await loader.execute(f"DROP INDEX IF EXISTS {HNSW}")
        await loader.execute(f"DROP INDEX IF EXISTS {PHASH}")
        load_s = await grow_big_tenant(loader, library, size, seed=size)
    finally:
        await loader.close()
    conn = await asyncpg.connect(url)
    try:
        mem, workers = build_settings(size)
        await conn.execute(f"SET maintenance_work_mem = '{mem}'")
        await conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
        build = await build_index(conn, HNSW_SQL)
        phash_build_s, _, _ = await build_index(conn, PHASH_SQL)
        print(
            f"scale: {size}: loaded in {load_s:.0f} s, HNSW {build[0]:.0f} s, pHash index "
            f"{phash_build_s:.0f} s (maintenance_work_mem {mem}, {workers} parallel workers)",
            flush=True,
        )
        await conn.execute("VACUUM ANALYZE")
        checks = await probe_checks(conn, library, seed=size)
        recall_big = await planted_recall(conn, library, [library.big], RECALL_QUERIES, size)
        recall_small = await planted_recall(conn, library, library.small, RECALL_QUERIES, size)
        halfvec = recall_half = None
        if do_halfvec:
            halfvec = await build_index(conn, HALFVEC_SQL)
            recall_half = await planted_recall(
                conn, library, [library.big], RECALL_QUERIES, size, halfvec=True
            )
            await conn.execute(f"DROP INDEX {HALFVEC}")
        same = await order_independence(conn, library, seed=size) if do_order else None
        runs = await dedupe_stage_runs(system, upload_paths)
        api, api_cpu, api_idle = await api_latencies(system, library, seed=size)
        per, _, view_set = await storage(conn)
        total = int(await conn.fetchval("SELECT count(*) FROM images"))
    finally:
        await conn.close()
    return SizeResult(
        size,
        load_s,
        build,
        halfvec,
        checks,
        recall_big,
        recall_small,
        recall_half,
        same,
        api,
        runs,
        per,
        total,
        view_set,
        phash_build_s,
        f"maintenance_work_mem {mem}, {workers} parallel workers",
        api_cpu,
        api_idle,
    )


def _label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def _tables(results: list[SizeResult]) -> list[Table]:
    checks = Table(
        "Duplicate check (the deduper's code in-process, inference excluded), per size of "
        "the big tenant",
        [
            "size",
            "wall p50 ms",
            "wall p99 ms",
            "CPU ms/check (mean)",
            "vector search p50/p99",
            "pHash search p50/p99",
            "candidates query p50/p99",
            "record p50/p99",
            "group upkeep p50/p99",
            "upkeep CPU ms (mean)",
            "group events/check (mean, max)",
        ],
        [
            [
                _label(r.size),
                _ms(r.checks.wall, 50),
                _ms(r.checks.wall, 99),
                round(1000 * float(np.mean(r.checks.cpu)), 2),
                f"{_ms(r.checks.vector, 50)} / {_ms(r.checks.vector, 99)}",
                f"{_ms(r.checks.phash, 50)} / {_ms(r.checks.phash, 99)}",
                f"{_ms(r.checks.candidates, 50)} / {_ms(r.checks.candidates, 99)}",
                f"{_ms(r.checks.record, 50)} / {_ms(r.checks.record, 99)}",
                f"{_ms(r.checks.upkeep, 50)} / {_ms(r.checks.upkeep, 99)}",
                round(1000 * float(np.mean(r.checks.upkeep_cpu)), 2),
                f"{np.mean(r.checks.events):.2f}, {max(r.checks.events)}",
            ]
            for r in results
        ],
    )
    recall = Table(
        "Planted copies found by the vector search (top 20), and the same uploads in two orders",
        [
            "size",
            "big tenant",
            "small tenants (filtered)",
            "small p50/p99 ms",
            "halfvec index, big tenant",
            "same groups in two orders",
        ],
        [
            [
                _label(r.size),
                round(r.recall_big.value, 3),
                round(r.recall_small.value, 3),
                f"{_ms(r.recall_small.latencies, 50)} / {_ms(r.recall_small.latencies, 99)}",
                "" if r.recall_half is None else round(r.recall_half.value, 3),
                "" if r.same_order is None else ("yes" if r.same_order else "no"),
            ]
            for r in results
        ],
    )
    names = sorted({n for r in results for n in r.api})
    api = Table(
        "API through the running system (p50 / p99 ms, 50 requests each); the dedupe stage "
        "of real 12 MP uploads (inference included)",
        ["size", *names, "dedupe stage run p50 / max ms"],
        [
            [
                _label(r.size),
                *[f"{_ms(r.api.get(n, []), 50)} / {_ms(r.api.get(n, []), 99)}" for n in names],
                f"{_ms(r.dedupe_runs, 50)} / {_ms(r.dedupe_runs, 100)}",
            ]
            for r in results
        ],
    )
    cpu_names = sorted({n for r in results for n in r.api_cpu})
    api_cpu = Table(
        "API reads: CPU per request, ms, the API process + PostgreSQL's backends (what a "
        "read costs apart from waiting for a core; the machine's load is in the notes)",
        ["size", *cpu_names],
        [
            [
                _label(r.size),
                *[
                    "{:.2f} + {:.2f}".format(*(1000 * t for t in r.api_cpu[n]))
                    if n in r.api_cpu
                    else ""
                    for n in cpu_names
                ],
            ]
            for r in results
        ],
    )
    tables_seen = sorted({t for r in results for t in r.storage})
    store = Table(
        "PostgreSQL bytes per image (table + indexes + TOAST, over every image of every "
        "tenant); index builds",
        [
            "size",
            "images in all",
            *tables_seen,
            "sub-view set (5 vectors, real uploads)",
            "HNSW build s",
            "HNSW backend peak RSS MB",
            "HNSW MB",
            "halfvec build s",
            "halfvec MB",
        ],
        [
            [
                _label(r.size),
                r.images_total,
                *[round(r.storage.get(t, 0)) for t in tables_seen],
                round(r.view_set_bytes),
                round(r.build[0], 1),
                round(r.build[1] / 1e6),
                round(r.build[2], 1),
                "" if r.halfvec is None else round(r.halfvec[0], 1),
                "" if r.halfvec is None else round(r.halfvec[2], 1),
            ]
            for r in results
        ],
    )
    return [checks, recall, api, api_cpu, store]


def _measurements(results: list[SizeResult]) -> list[Measurement]:
    base = _label(results[0].size)
    out = []
    for r in results:
        label = _label(r.size)
        ref = None if r is results[0] else base
        out += [
            Measurement(
                f"check CPU per check, {label}",
                1000 * float(np.mean(r.checks.cpu)),
                "ms",
                baseline=ref and f"check CPU per check, {ref}",
            ),
            Measurement(
                f"check wall p99, {label}",
                _ms(r.checks.wall, 99),
                "ms",
                baseline=ref and f"check wall p99, {ref}",
            ),
            Measurement(
                f"group upkeep p99, {label}",
                _ms(r.checks.upkeep, 99),
                "ms",
                baseline=ref and f"group upkeep p99, {ref}",
            ),
            Measurement(
                f"planted-copy recall, big tenant, {label}",
                r.recall_big.value,
                "",
                lower_is_better=False,
            ),
            Measurement(
                f"planted-copy recall, small tenants, {label}",
                r.recall_small.value,
                "",
                lower_is_better=False,
            ),
        ]
        for name, values in r.api.items():
            out.append(
                Measurement(
                    f"{name} p99, {label}",
                    _ms(values, 99),
                    "ms",
                    baseline=ref and f"{name} p99, {ref}",
                )
            )
        for name, (api_s, pg_s) in r.api_cpu.items():
            out.append(
                Measurement(
                    f"{name} CPU per request, {label}",
                    1000 * (api_s + pg_s),
                    "ms",
                    baseline=ref and f"{name} CPU per request, {ref}",
                )
            )
    return out


async def _prepare(system: LocalSystem, small_tenants: int) -> Library:
    conn = await asyncpg.connect(system.env["IMGFLOW_DATABASE_URL"])
    try:
        tenant = await tenant_for_key(conn, system.api_key)
    finally:
        await conn.close()
    if tenant is None:
        raise RuntimeError("the bootstrap key has no tenant")
    library = Library(big=tenant.id)
    loader = await loading_connection(system.env["IMGFLOW_DATABASE_URL"])
    try:
        # built after each load instead: inserting into HNSW row by row is many times slower
        await loader.execute(f"DROP INDEX IF EXISTS {HNSW}")
        await loader.execute(f"DROP INDEX IF EXISTS {PHASH}")
        await add_small_tenants(loader, library, small_tenants, SMALL_IMAGES, seed=7)
    finally:
        await loader.close()
    return library


def _run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return asyncio.run(fn(*args))


def run(quick: bool = False, options: BenchOptions | None = None) -> Suite:
    options = options or BenchOptions()
    sizes = [1_000, 2_000] if quick else sorted(options.vectors)
    spec = SMALL if quick else FULL
    paths = ensure_images(UPLOADS * len(sizes), spec)
    data_dir = Path(tempfile.mkdtemp(prefix="imgflow-bench-scale-"))
    results: list[SizeResult] = []
    notes: list[str] = []
    keep = True
    try:
        with LocalSystem.on_free_ports(data_dir, concurrency=options.concurrency) as system:
            library = _run_async(_prepare, system, 10 if quick else SMALL_TENANTS)
            middle = sizes[len(sizes) // 2] if len(sizes) > 2 else sizes[-1]
            for k, size in enumerate(sizes):
                uploads = paths[k * UPLOADS : (k + 1) * UPLOADS]
                results.append(
                    _run_async(measure_size, system, library, size, uploads, size == middle, k == 0)
                )
                r = results[-1]
                notes.append(
                    f"{_label(size)}: loaded in {r.load_s:.0f} s; HNSW built in "
                    f"{r.build[0]:.0f} s ({r.build[2]:.0f} MB, backend peak RSS "
                    f"{r.build[1] / 1e6:.0f} MB; {r.build_settings}); pHash index built in "
                    f"{r.phash_build_s:.0f} s; {len(library.bursts)} bursts so far; the API "
                    f"idle {1000 * r.api_idle_cpu:.0f} ms CPU a second (its background loops, "
                    "in each read's CPU for the read's wall time)"
                )
        keep = False
    finally:
        if keep:
            print(f"scale: the stack's data and logs are kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    notes += [
        f"Tenants: the big one (the bootstrap key's) at each size, {SMALL_TENANTS} small ones "
        f"of {SMALL_IMAGES} images sharing its index. {int(100 * 0.2)} % of the big tenant in "
        "burst components of 50-500 images.",
        f"Checks: {PROBES} per size (half copies landing in a burst, half new photos), "
        f"after 4 warm-up ones; CPU = this process + its PostgreSQL backend. Recall: "
        f"{RECALL_QUERIES - 3} planted copies per row. Machine: {os.cpu_count()} cores, "
        f"shared (load average {os.getloadavg()[0]:.1f} at the end).",
    ]
    return Suite(
        "Scale: duplicate checks, listings and storage as a tenant grows",
        _measurements(results),
        notes=notes,
        tables=_tables(results),
    )

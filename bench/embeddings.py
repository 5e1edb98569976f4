"""The deduper's costs: CNN embeddings per second per core, and vector search in pgvector.

Inference: the real ONNX model on ONNX Runtime's CPU provider, one image at a time against
batches, one thread against the process's CPU share, and the mirror-invariant pair the
worker runs by default. Search: a real PostgreSQL + pgvector (the local stack's server),
the migrations' schema and HNSW index, and the deduper's own nearest-neighbour SQL, at
10k and 100k stored vectors; latency p50/p99 against an exact scan (the baseline), and
the HNSW result's recall against that exact answer. Vectors are synthetic (clustered,
non-negative and unit-length like CNN features): the index sees only their geometry.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import skimage.data
from PIL import Image

from bench.options import BenchOptions
from bench.results import Measurement, Suite, Table
from imgflow_contracts.schema.migrate import run_migrations
from imgflow_deduper.encoder import Encoder, cpu_share, embed_views
from imgflow_deduper.pixels import Normalisation, to_tensor, view_tensors
from imgflow_deduper.repository import EmbeddingSpace, nearest_sql
from imgflow_deduper.settings import DedupeSettings
from imgflow_localstack.ports import free_port
from imgflow_localstack.postgres import PostgresServer
from imgflow_runtime.db.tenants import DEFAULT_TENANT_ID
from tools.build_model import ensure_model

_DEFAULTS = DedupeSettings.model_fields
NORM = Normalisation.of(
    _DEFAULTS["dedupe_input_size"].default,
    _DEFAULTS["dedupe_mean"].default,
    _DEFAULTS["dedupe_std"].default,
    _DEFAULTS["dedupe_detail_size"].default,
)
SPACE = EmbeddingSpace("efficientnet-lite0", 1280)
TOP_K = 20  # the deduper's default candidates per image
EF_SEARCHES = (40, 100, 200)  # pgvector's default, the deduper's first, the deduper's now
MIGRATION_EF_CONSTRUCTION = 64  # migration 0003's index (pgvector's default)
INDEX_SQL = """CREATE INDEX image_embeddings_efficientnet_lite0_hnsw ON image_embeddings
    USING hnsw ((embedding::vector(1280)) vector_cosine_ops)
    WITH (m = 16, ef_construction = {ef_construction})
    WHERE model = 'efficientnet-lite0'"""


def _per_image_s(work: Callable[[], object], images: int, repeats: int) -> float:
    work()  # warm-up: first run allocates and picks kernels
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best / images


def _inference(quick: bool) -> tuple[list[Measurement], list[str]]:
    model = str(ensure_model())
    photo = Image.fromarray(skimage.data.astronaut()).convert("RGB")
    one = to_tensor(photo, NORM)[None]
    batch = np.repeat(one, 8, axis=0)
    repeats = 2 if quick else 5
    cores = cpu_share()
    single = Encoder(model, ["CPUExecutionProvider"], threads=1)
    every = Encoder(model, ["CPUExecutionProvider"], threads=cores)

    single_s = _per_image_s(lambda: [single.embed(one) for _ in range(8)], 8, repeats)
    batched_s = _per_image_s(lambda: single.embed(batch), 8, repeats)
    mirrored_s = _per_image_s(
        lambda: [single.embed(one, mirror_invariant=True) for _ in range(8)], 8, repeats
    )
    all_cores_s = _per_image_s(lambda: [every.embed(one) for _ in range(8)], 8, repeats)
    six_views = np.repeat(one, 6, axis=0)  # the whole image and five sub-views
    worker_s = _per_image_s(
        lambda: [embed_views(single, six_views, mirror_invariant=True) for _ in range(2)],
        2,
        repeats,
    )

    big = photo.resize((4000, 3000), Image.Resampling.BICUBIC)
    path = Path(tempfile.mkdtemp()) / "12mp.jpg"
    big.save(path, "JPEG", quality=92)
    data = path.read_bytes()
    decode_s = _per_image_s(lambda: view_tensors(data, NORM, True), 1, repeats * 2)

    per_core = "images/s/core"
    return [
        Measurement("1 thread, one image per run", 1 / single_s, per_core, lower_is_better=False),
        Measurement(
            "1 thread, batches of 8",
            1 / batched_s,
            per_core,
            baseline="1 thread, one image per run",
            lower_is_better=False,
        ),
        Measurement(
            "1 thread, image + mirror",
            1 / mirrored_s,
            per_core,
            baseline="1 thread, one image per run",
            lower_is_better=False,
        ),
        Measurement(
            "1 thread, whole + mirror + 5 views (worker default)",
            1 / worker_s,
            per_core,
            baseline="1 thread, one image per run",
            lower_is_better=False,
        ),
        Measurement(
            f"{cores} threads, one image per run",
            1 / all_cores_s / cores,
            per_core,
            baseline="1 thread, one image per run",
            lower_is_better=False,
            extra={"images_per_s": 1 / all_cores_s},
        ),
        Measurement(
            f"decode a 12 MP JPEG + 6 views ({len(data) / 1e6:.1f} MB)", decode_s * 1000, "ms"
        ),
    ], [
        f"Inference: {1000 * single_s:.1f} ms per {NORM.size} px image on one core; the worker's "
        f"default (whole image and its mirror, five 80 % crops: 7 inputs) costs "
        f"{1000 * worker_s:.0f} ms per upload. Batches of 8 give {single_s / batched_s:.2f}x "
        "per image on the CPU provider here (it swings between runs on a shared machine; "
        "unloaded it was below 1x), so the worker does not batch across jobs. On CUDA "
        "batches pay: a batching consumer would come with GPU nodes.",
    ]


# ---------------------------------------------------------------------------------------


CHUNK = 50_000  # vectors generated, loaded and scored at a time: bounded memory at 1M


def clustered_vectors(n: int, seed: int, centres: int = 2000) -> np.ndarray:
    """Unit vectors around shared centres, non-negative like ReLU6-pooled features."""
    rng = np.random.default_rng(1280)  # the same centres for data and queries
    means = np.abs(rng.normal(size=(centres, 1280))).astype(np.float32) ** 2
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, centres, size=n)
    vectors = means[picks] + rng.exponential(0.8, size=(n, 1280)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _encode_vector(v: np.ndarray) -> bytes:
    # pgvector's binary format: dims and an unused word, then big-endian float32s.
    return struct.pack(">HH", len(v), 0) + np.asarray(v, ">f4").tobytes()


class ExactTruth:
    """The exact top-k of each query over every vector loaded so far, kept as chunks
    arrive (numpy, float32 dot products of unit vectors = cosine order), so the stored
    set never has to sit in memory at once and 1M needs no exact scan per query."""

    def __init__(self, queries: np.ndarray, k: int):
        self.queries = queries
        self.k = k
        self.ids: list[UUID] = []  # every loaded id, by load order
        self.scores = np.empty((len(queries), 0), dtype=np.float32)
        self.rows = np.empty((len(queries), 0), dtype=np.int64)  # indexes into ids

    def add(self, vectors: np.ndarray, ids: list[UUID]) -> None:
        first = len(self.ids)
        self.ids.extend(ids)
        new_rows = np.broadcast_to(np.arange(first, len(self.ids)), (len(self.queries), len(ids)))
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        rows = np.concatenate([self.rows, new_rows], axis=1)
        keep = np.argpartition(-scores, min(self.k, scores.shape[1]) - 1, axis=1)[:, : self.k]
        self.scores = np.take_along_axis(scores, keep, axis=1)
        self.rows = np.take_along_axis(rows, keep, axis=1)

    def answers(self) -> list[set[UUID]]:
        return [{self.ids[i] for i in row} for row in self.rows]


# Near-duplicates planted for each query at these cosines, above the decision threshold
# (0.91) and above what its cluster-mates reach (~0.90): whether the search returns them
# is what the deduper needs from it. The top 20 beyond them are near-ties of ~0.90
# (hundreds of cluster-mates at 1M), which makes recall@20 itself a pessimistic figure.
PLANTED_COSINES = (0.93, 0.97)


def planted_near(queries: np.ndarray, seed: int) -> np.ndarray:
    """For each query, one unit vector at each of PLANTED_COSINES to it (query-major)."""
    rng = np.random.default_rng(seed)
    out = []
    for q in queries:
        for cosine in PLANTED_COSINES:
            other = rng.normal(size=q.shape).astype(np.float32)
            other -= (other @ q) * q
            other /= np.linalg.norm(other)
            out.append(cosine * q + np.sqrt(1 - cosine**2) * other)
    return np.asarray(out, dtype=np.float32)


async def _load(
    conn: asyncpg.Connection, count: int, seed: int, truth: ExactTruth, planted: np.ndarray
) -> list[UUID]:
    """Load ``count`` vectors with ``planted`` among them (in the middle chunk, so they are
    neither the first nor the last the index sees); returns the planted vectors' ids."""
    planted_ids: list[UUID] = []
    middle = (count // 2) // CHUNK * CHUNK
    for start in range(0, count, CHUNK):
        vectors = clustered_vectors(min(CHUNK, count - start), seed=seed * 1000 + start // CHUNK)
        ids = [uuid4() for _ in range(len(vectors))]
        if start == middle:
            planted_ids = [uuid4() for _ in range(len(planted))]
            vectors, ids = np.concatenate([vectors, planted]), ids + planted_ids
        await conn.copy_records_to_table(
            "images",
            records=[
                (i, DEFAULT_TENANT_ID, f"originals/{i}", "image/jpeg", 1, "0" * 64) for i in ids
            ],
            columns=["id", "tenant_id", "object_key", "content_type", "byte_size", "sha256"],
        )
        await conn.copy_records_to_table(
            "image_embeddings",
            records=[
                (i, DEFAULT_TENANT_ID, SPACE.model, v) for i, v in zip(ids, vectors, strict=True)
            ],
            columns=["image_id", "tenant_id", "model", "embedding"],
        )
        truth.add(vectors, ids)
    return planted_ids


async def _timed_queries(
    conn: asyncpg.Connection, queries: np.ndarray, exact: bool, ef_search: int
) -> tuple[list[float], list[set[UUID]]]:
    sql = nearest_sql(SPACE)
    latencies, answers = [], []
    async with conn.transaction():
        await conn.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        if exact:
            await conn.execute("SET LOCAL enable_indexscan = off")
        statement = await conn.prepare(sql)
        for q in queries:
            started = time.perf_counter()
            rows = await statement.fetch(uuid4(), DEFAULT_TENANT_ID, q.tolist(), TOP_K)
            latencies.append(time.perf_counter() - started)
            answers.append({r["id"] for r in rows})
    return latencies, answers


def _pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, p))


def _recall(found: list[set[UUID]], truth: list[set[UUID]]) -> float:
    return statistics.mean(len(f & t) / len(t) for f, t in zip(found, truth, strict=True))


def _label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


# An exact scan reads every stored vector (~5 GB at 1M): a few queries give its latency.
EXACT_SCAN_QUERIES_ABOVE_100K = 5


async def _search(
    database_url: str, sizes: list[int], n_queries: int, ef_construction: int
) -> tuple[list[Measurement], Table, list[str]]:
    conn = await asyncpg.connect(database_url)
    await conn.set_type_codec(
        "vector", schema="public", encoder=_encode_vector, decoder=bytes, format="binary"
    )
    # A throwaway server: no WAL for the ~5 GB of vectors and the index at 1M (search
    # reads the same pages either way). The graph must fit maintenance_work_mem or the
    # build slows down many times over (~8 KB per 1280-dim vector with m=16).
    await conn.execute("ALTER TABLE image_embeddings SET UNLOGGED")
    # Its per-image event (and advisory lock, one per row of a bulk COPY: the lock table
    # overflows at ~10k) means nothing for synthetic rows.
    await conn.execute("ALTER TABLE images DISABLE TRIGGER images_created_event")
    await conn.execute(f"SET maintenance_work_mem = '{max(2, 9 * sizes[-1] // 1_000_000)}GB'")
    await conn.execute("SET max_parallel_maintenance_workers = 1")
    measurements: list[Measurement] = []
    rows: list[list[str | float | int]] = []
    notes: list[str] = []
    loaded = 0
    queries = clustered_vectors(n_queries, seed=99)
    truth = ExactTruth(queries, TOP_K)
    per_query = len(PLANTED_COSINES)
    duplicates: list[set[UUID]] = [set() for _ in range(n_queries)]
    try:
        for size in sizes:
            label = _label(size)
            await conn.execute("DROP INDEX IF EXISTS image_embeddings_efficientnet_lite0_hnsw")
            started = time.perf_counter()
            planted = await _load(
                conn, size - loaded, seed=size, truth=truth, planted=planted_near(queries, size)
            )
            for q, found in enumerate(duplicates):
                found.update(planted[q * per_query : (q + 1) * per_query])
            loaded = size
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            await conn.execute(INDEX_SQL.format(ef_construction=ef_construction))
            build_s = time.perf_counter() - started
            print(f"embeddings: {label} loaded in {load_s:.0f} s, HNSW built in {build_s:.0f} s")
            await conn.execute("VACUUM ANALYZE image_embeddings")
            index_mb = await conn.fetchval(
                "SELECT pg_relation_size('image_embeddings_efficientnet_lite0_hnsw') / 1e6"
            )
            exact_n = n_queries if size <= 100_000 else EXACT_SCAN_QUERIES_ABOVE_100K
            exact_lat, exact_found = await _timed_queries(
                conn, queries[:exact_n], exact=True, ef_search=40
            )
            expected = truth.answers()
            # The numpy truth must be what PostgreSQL's own exact scan returns.
            agreement = _recall(exact_found, expected[:exact_n])
            measurements.append(
                Measurement(f"exact scan p50, {label} vectors", _pct(exact_lat, 50), "ms")
            )
            rows.append(
                [
                    label,
                    f"exact (seq scan, {exact_n} queries)",
                    round(_pct(exact_lat, 50), 2),
                    round(_pct(exact_lat, 99), 2),
                    round(agreement, 4),
                    round(_recall(exact_found, duplicates[:exact_n]), 4),
                    "",
                    "",
                ]
            )
            for ef in EF_SEARCHES:
                await _timed_queries(conn, queries[:20], exact=False, ef_search=ef)  # warm
                lat, found = await _timed_queries(conn, queries, exact=False, ef_search=ef)
                recall = _recall(found, expected)
                duplicate_recall = _recall(found, duplicates)
                name = f"HNSW ef_search={ef} p50, {label} vectors"
                measurements.append(
                    Measurement(
                        name,
                        _pct(lat, 50),
                        "ms",
                        baseline=f"exact scan p50, {label} vectors",
                        extra={
                            "p99_ms": _pct(lat, 99),
                            "recall_at_20": recall,
                            "duplicate_recall": duplicate_recall,
                        },
                    )
                )
                measurements.append(
                    Measurement(
                        f"HNSW ef_search={ef} planted duplicates found, {label}",
                        duplicate_recall,
                        "",
                        lower_is_better=False,
                    )
                )
                measurements.append(
                    Measurement(
                        f"HNSW ef_search={ef} recall@{TOP_K}, {label}",
                        recall,
                        "",
                        lower_is_better=False,
                    )
                )
                rows.append(
                    [
                        label,
                        f"HNSW ef_search={ef}",
                        round(_pct(lat, 50), 2),
                        round(_pct(lat, 99), 2),
                        round(recall, 4),
                        round(duplicate_recall, 4),
                        round(build_s, 1),
                        round(float(index_mb), 1),
                    ]
                )
            notes.append(
                f"{label}: loaded in {load_s:.0f} s, HNSW build {build_s:.1f} s, index "
                f"{index_mb:.0f} MB; PostgreSQL's exact scan agrees with the numpy truth "
                f"at {agreement:.3f}"
            )
    finally:
        await conn.close()
    table = Table(
        f"Nearest {TOP_K} of a 1280-dim query (cosine), one tenant, {n_queries} queries",
        [
            "stored",
            "search",
            "p50 ms",
            "p99 ms",
            "recall@20",
            "planted duplicates found",
            "index build s",
            "index MB",
        ],
        rows,
    )
    return measurements, table, notes


def run(quick: bool = False, options: BenchOptions | None = None) -> Suite:
    measurements, notes = _inference(quick)
    options = options or BenchOptions()
    sizes = [2_000] if quick else sorted(options.vectors)
    ef_construction = options.ef_construction
    with tempfile.TemporaryDirectory(prefix="imgflow-bench-pgvector-") as folder:
        server = PostgresServer(Path(folder) / "pg", Path(folder) / "postgres.log", free_port())
        server.start()
        try:
            run_migrations(server.database_url)
            search, table, search_notes = asyncio.run(
                _search(server.database_url, sizes, 30 if quick else 300, ef_construction)
            )
        finally:
            server.stop()
    notes += [
        *search_notes,
        f"HNSW: m=16, ef_construction={ef_construction} (migration 0003 builds with "
        f"{MIGRATION_EF_CONSTRUCTION}, pgvector's default), cosine, top {TOP_K}, built by 2 "
        "processes (max_parallel_maintenance_workers=1) on this "
        f"{os.cpu_count()}-core machine; latency is one query on a warm cache, from Python "
        "over loopback; recall is against the exact top 20 (numpy, every stored vector).",
    ]
    if sizes[-1] < 1_000_000:
        notes.append(
            '1M vectors: `make bench ARGS="--only embeddings --vectors 10000,1000000"` '
            "(~5 GB of vectors, ~8 GB of index, an hour-plus build on 2 cores)."
        )
    return Suite(
        "Deduper: CNN embeddings and pgvector search",
        measurements + search,
        notes=notes,
        tables=[table],
    )

"""The deduper's candidate search, with and without the similar check's own candidates.

Part of ``bench --only dedupe``. On a throwaway PostgreSQL (the local stack's, migrations
applied), one tenant keeps SHOTS shots of COPIES copies each (synthetic unit vectors: a
copy at cosine 0.985 to its shot, the shots of one scene at 0.6 to each other), every
shot's copies stored as one duplicate group, as a library with many copies of each shot
looks. A new frame of a scene (cosine 0.9 to one shot) is searched as the worker
searches it (``repository.find_candidates``): the 20 nearest alone, then with the nearest
image of each other group among the HNSW scan's ``ef_search`` nearest at least the probe
cosine alike (``IMGFLOW_DEDUPE_SIMILAR_CANDIDATES``). Interleaved, median of the runs.
Measured: the SQL, and how many candidates the geometric check then runs on (each costs
a pair check, "one look-alike checked" above, plus its features and an S3 GET when not
in the process's cache).
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import numpy as np

from bench.results import Measurement
from imgflow_contracts.schema.migrate import run_migrations
from imgflow_deduper.repository import EmbeddingSpace, SearchLimits, Subject, find_candidates
from imgflow_localstack.ports import free_port
from imgflow_localstack.postgres import PostgresServer

SPACE = EmbeddingSpace("efficientnet-lite0", 1280)
LIMITS = SearchLimits(candidates=20, phash_distance=22, ef_search=200, probe_cosine=0.5)
SCENE_SHOTS = 3  # shots per scene, 0.6 alike
COPIES = 20


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _near(v: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    other = rng.normal(size=len(v))
    other = _unit(other - (other @ v) * v)
    return _unit(cosine * v + np.sqrt(1 - cosine**2) * other)


async def _seed(
    conn: asyncpg.Connection, scenes: int, rng: np.random.Generator
) -> tuple[UUID, list[np.ndarray]]:
    tenant = uuid4()
    await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, str(tenant))
    shots = []
    for _ in range(scenes):
        scene = _unit(rng.normal(size=SPACE.dim))
        shots += [_near(scene, np.sqrt(0.6), rng) for _ in range(SCENE_SHOTS)]
    images, vectors, groups, members = [], [], [], []
    for shot in shots:
        group = uuid4()
        groups.append(group)
        for _ in range(COPIES):
            image = uuid4()
            images.append(image)
            vectors.append(_near(shot, np.sqrt(0.985), rng))
            members.append((image, group))
    await conn.executemany(
        """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256)
           VALUES ($1, $2, $3, 'image/jpeg', 1000, $4)""",
        [(i, tenant, f"originals/{i}", secrets.token_hex(32)) for i in images],
    )
    await conn.executemany(
        f"""INSERT INTO image_embeddings (image_id, tenant_id, model, embedding)
            VALUES ($1, $2, $3, {SPACE.param(4)})""",
        [(i, tenant, SPACE.model, v.tolist()) for i, v in zip(images, vectors, strict=True)],
    )
    await conn.executemany("INSERT INTO duplicate_groups (id, tenant_id) VALUES ($1, $2)",
                           [(g, tenant) for g in groups])  # fmt: skip
    await conn.executemany(
        "INSERT INTO duplicate_group_members (image_id, group_id) VALUES ($1, $2)", members
    )
    await conn.execute("ANALYZE")
    return tenant, shots


async def _search(
    conn: asyncpg.Connection, subject: Subject, vector: np.ndarray, limits: SearchLimits
) -> tuple[float, int]:
    started = time.perf_counter()
    found = await find_candidates(conn, subject, SPACE, vector, limits, True)
    spent = time.perf_counter() - started
    checked = sum(c.signals.cosine is not None and c.signals.cosine >= 0.5 for c in found)
    return spent, checked


async def _measure(database_url: str, scenes: int, reps: int) -> list[Measurement]:
    rng = np.random.default_rng(28)
    conn = await asyncpg.connect(database_url)
    try:
        tenant, shots = await _seed(conn, scenes, rng)
        wider = replace(LIMITS, similar_candidates=20)
        ways = {"20 nearest": LIMITS, "+ similar candidates": wider}
        spent: dict[str, list[float]] = {w: [] for w in ways}
        checks: dict[str, list[int]] = {w: [] for w in ways}
        for k in range(reps):
            vector = _near(shots[int(rng.integers(len(shots)))], 0.9, rng)
            subject = Subject(uuid4(), tenant, None)
            await conn.execute(
                """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size,
                                       sha256)
                   VALUES ($1, $2, $3, 'image/jpeg', 1, $4)""",
                subject.image_id,
                tenant,
                f"originals/{subject.image_id}",
                secrets.token_hex(32),
            )
            for way in list(ways)[:: 1 if k % 2 == 0 else -1]:
                seconds, n = await _search(conn, subject, vector, ways[way])
                spent[way].append(seconds)
                checks[way].append(n)
    finally:
        await conn.close()
    n = scenes * SCENE_SHOTS * COPIES
    base = f"candidate search, 20 nearest ({n} images)"
    return [
        Measurement(base, 1000 * statistics.median(spent["20 nearest"]), "ms"),
        Measurement(f"candidate search, + similar candidates ({n} images)",
                    1000 * statistics.median(spent["+ similar candidates"]), "ms", base),
        Measurement("geometric checks per upload, 20 nearest",
                    statistics.mean(checks["20 nearest"]), "checks"),
        Measurement("geometric checks per upload, + similar candidates",
                    statistics.mean(checks["+ similar candidates"]), "checks"),
    ]  # fmt: skip


def measure_search(quick: bool = False) -> list[Measurement]:
    scenes, reps = (4, 6) if quick else (100, 60)
    with tempfile.TemporaryDirectory(prefix="imgflow-bench-search-") as folder:
        server = PostgresServer(Path(folder) / "pg", Path(folder) / "postgres.log", free_port())
        server.start()
        try:
            run_migrations(server.database_url)
            return asyncio.run(_measure(server.database_url, scenes, reps))
        finally:
            server.stop()

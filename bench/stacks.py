"""The cost of similar-stack upkeep per check, against the groups' upkeep alone.

After every check the deduper regroups the image's component (``regroup_around``) and
then restacks it (``restack_around``). Here both run against a throwaway PostgreSQL with
the migrations applied, on one tenant's component of N related images seeded by SQL:
duplicate groups of 1-4 images (every two members a duplicate pair) and similar pairs
chaining the groups (each group to the next two), with the groups and the stacks already
stored, as they are after the uploads that made them. Each check's upkeep is timed
with and without the stacks step, interleaved, on a seed image drawn from the
component; the ratio is the baseline (groups only) over the whole upkeep.

    python -m bench --only stacks
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import numpy as np

from bench.results import Measurement, Suite, Table
from imgflow_contracts.schema.migrate import run_migrations
from imgflow_localstack.ports import free_port
from imgflow_localstack.postgres import PostgresServer
from imgflow_runtime.db.duplicate_groups import regroup_around
from imgflow_runtime.db.similar_stacks import WHOLE_COMPONENT, restack_around

SIZES = (10, 100, 500)
QUICK_SIZES = (10, 100)
GROUP_SIZES = (4, 1, 3, 2)  # cycled: the component's duplicate groups (1: an ungrouped image)


def _units(n: int) -> list[list[UUID]]:
    units: list[list[UUID]] = []
    left = n
    while left:
        size = min(GROUP_SIZES[len(units) % len(GROUP_SIZES)], left)
        units.append([uuid4() for _ in range(size)])
        left -= size
    return units


def _pair(a: UUID, b: UUID) -> tuple[UUID, UUID]:
    return (a, b) if a < b else (b, a)


async def seed(
    conn: asyncpg.Connection, n: int, rng: np.random.Generator
) -> tuple[UUID, list[UUID]]:
    """A tenant holding one component of ``n`` related images; its id and the images."""
    tenant = uuid4()
    units = _units(n)
    images = [i for unit in units for i in unit]
    duplicates = {_pair(a, b) for unit in units for k, a in enumerate(unit) for b in unit[k + 1 :]}
    similar = {
        _pair(units[u][rng.integers(len(units[u]))], units[v][rng.integers(len(units[v]))])
        for u in range(len(units))
        for v in (u + 1, u + 2)
        if v < len(units)
    }
    await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, str(tenant))
    await conn.execute(
        """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256)
           SELECT id, $2, 'originals/' || id, 'image/jpeg', 100000, sha
             FROM unnest($1::uuid[], $3::text[]) AS s (id, sha)""",
        images,
        tenant,
        [secrets.token_hex(32) for _ in images],
    )
    await conn.execute(
        """INSERT INTO duplicate_pairs (image_a, image_b, tenant_id, method, score, cosine)
           SELECT a, b, $3, 'cnn', 0.97, 0.97 FROM unnest($1::uuid[], $2::uuid[]) AS p (a, b)""",
        [a for a, _ in duplicates],
        [b for _, b in duplicates],
        tenant,
    )
    await conn.execute(
        """INSERT INTO similar_pairs (image_a, image_b, tenant_id, cosine, inliers, iou, basis)
           SELECT a, b, $3, 0.9, 90, 0.45, 'geometry'
             FROM unnest($1::uuid[], $2::uuid[]) AS p (a, b)""",
        [a for a, _ in similar],
        [b for _, b in similar],
        tenant,
    )
    groups = [unit for unit in units if len(unit) > 1]
    group_ids = [uuid4() for _ in groups]
    await conn.execute(
        "INSERT INTO duplicate_groups (id, tenant_id) SELECT unnest($1::uuid[]), $2",
        group_ids,
        tenant,
    )
    await conn.execute(
        """INSERT INTO duplicate_group_members (image_id, group_id)
           SELECT * FROM unnest($1::uuid[], $2::uuid[])""",
        [i for unit in groups for i in unit],
        [g for g, unit in zip(group_ids, groups, strict=True) for _ in unit],
    )
    # the stacks as the uploads left them: every image's upkeep once (a whole component
    # is done by the first; one past WHOLE_COMPONENT needs each image's neighbourhood)
    for image in images[:1] if n <= WHOLE_COMPONENT else images:
        await regroup_around(conn, tenant, [image])
        await restack_around(conn, tenant, [image])
    return tenant, images


async def _timed(conn: asyncpg.Connection, tenant: UUID, image: UUID, stacks: bool) -> float:
    started = time.perf_counter()
    await regroup_around(conn, tenant, [image])
    if stacks:
        await restack_around(conn, tenant, [image])
    return time.perf_counter() - started


async def _counts(conn: asyncpg.Connection, tenant: UUID) -> tuple[int, int, int, int]:
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM duplicate_pairs WHERE tenant_id = $1) AS dup,
                  (SELECT count(*) FROM similar_pairs WHERE tenant_id = $1) AS sim,
                  (SELECT count(*) FROM duplicate_groups WHERE tenant_id = $1) AS groups,
                  (SELECT count(*) FROM similar_stacks WHERE tenant_id = $1) AS stacks""",
        tenant,
    )
    return row["dup"], row["sim"], row["groups"], row["stacks"]


async def measure(
    database_url: str, sizes: tuple[int, ...], reps: int
) -> tuple[list[Measurement], Table]:
    rng = np.random.default_rng(28)
    conn = await asyncpg.connect(database_url)
    measurements: list[Measurement] = []
    rows: list[list[str | float | int]] = []
    try:
        for n in sizes:
            tenant, images = await seed(conn, n, rng)
            without: list[float] = []
            with_stacks: list[float] = []
            for k in range(reps):
                image = images[int(rng.integers(len(images)))]
                first = k % 2 == 0  # interleaved, each first half the time
                for stacks in (not first, first):
                    spent = await _timed(conn, tenant, image, stacks)
                    (with_stacks if stacks else without).append(spent)
            base = f"upkeep per check, groups only, N={n}"
            ms_without = 1000 * statistics.median(without)
            ms_with = 1000 * statistics.median(with_stacks)
            measurements += [
                Measurement(base, ms_without, "ms"),
                Measurement(f"upkeep per check, groups + stacks, N={n}", ms_with, "ms", base),
            ]
            dup, sim, groups, stacks = await _counts(conn, tenant)
            rows.append(
                [
                    n,
                    dup,
                    sim,
                    groups,
                    stacks,
                    round(ms_without, 2),
                    round(ms_with, 2),
                    round(ms_with - ms_without, 2),
                ]
            )
    finally:
        await conn.close()
    table = Table(
        "Upkeep per check (median ms) by component size",
        [
            "images",
            "duplicate pairs",
            "similar pairs",
            "groups",
            "stacks",
            "groups only",
            "groups + stacks",
            "stacks step",
        ],
        rows,
    )
    return measurements, table


def run(quick: bool = False) -> Suite:
    sizes, reps = (QUICK_SIZES, 5) if quick else (SIZES, 40)
    with tempfile.TemporaryDirectory(prefix="imgflow-bench-stacks-") as folder:
        server = PostgresServer(Path(folder) / "pg", Path(folder) / "postgres.log", free_port())
        server.start()
        try:
            run_migrations(server.database_url)
            measurements, table = asyncio.run(measure(server.database_url, sizes, reps))
        finally:
            server.stop()
    return Suite(
        "Similar stacks: upkeep per check, with and without the stacks step",
        measurements,
        notes=[
            f"One tenant's component of N images: duplicate groups of {GROUP_SIZES} images "
            "(cycled), each group similar to the next two; groups and stacks stored before. "
            f"Median of {reps} checks on random images of it, the two variants interleaved; "
            "time = regroup_around (+ restack_around), client-side, on a local PostgreSQL.",
            f"Past {WHOLE_COMPONENT} images both steps work around the image, not on the "
            "whole component.",
            f"Machine: {os.cpu_count()} cores, shared (load average {os.getloadavg()[0]:.1f} "
            "at the end).",
        ],
        tables=[table],
    )

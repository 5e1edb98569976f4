"""A synthetic photo library for the scale bench, loaded with COPY (not the API).

What is loaded looks like what the system itself writes for a processed upload: the
image row (tenant, facts, pHash), its three stage rows done, its duplicate check, three
renditions, its whole-image embedding, and for the images in bursts their duplicate
pairs and groups. Sub-view embeddings are not loaded (5 more vectors an image, read only
for the candidates a search found): their bytes are counted from real uploads instead.

Embeddings: most images are singles drawn around 2,000 shared centres (bench.embeddings:
non-negative, unit length, cluster-mates ~0.90 apart, just below the decision's 0.91);
a share are in burst-like components of 50-500 images: a burst centre, frames around it
at the spread the real model puts between a burst frame and its shot, and 1-4 copies of
each frame at the spread it puts between a photo's edited copies (both measured on the
evaluation set: tools/dedupe_eval/spread.py). A component's pairs are the ones a check
would find (each image against the images before it, the 20 nearest at or above the
cosine threshold), its groups the rule's grouping of those pairs.
"""

from __future__ import annotations

import secrets
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import numpy as np

from bench.embeddings import clustered_vectors
from imgflow_runtime.grouping import Pair, Rule, group

DIM = 1280
MODEL = "efficientnet-lite0"
CANDIDATES = 20  # the deduper's default: a check pairs with at most this many by vector
COSINE_THRESHOLD = 0.91  # the deduper's default CNN threshold
BURST_SHARE = 0.2  # of the big tenant's images, in burst components
BURST_SIZES = (50, 500)
RENDITIONS = ((150, 6_000), (300, 18_000), (600, 55_000))  # size px, WebP bytes
CHUNK = 20_000

# Percentiles (percent, cosine) of an edited copy's cosine to its photo's mean direction,
# measured by `python -m tools.dedupe_eval.spread` (EfficientNet-Lite0 and the deduper's 7
# inputs, 940 copies in 52 groups of the evaluation set; 2026-12-05): p1 0.68, p5 0.81,
# p10 0.86, p25 0.92, p50 0.97, p75 0.985, p90 0.992. (Copy to copy: p50 0.91.)
COPY_TO_CENTRE = (
    (0, 0.60),
    (1, 0.682),
    (5, 0.811),
    (10, 0.859),
    (25, 0.923),
    (50, 0.971),
    (75, 0.985),
    (90, 0.992),
    (100, 0.999),
)
# A burst's frames around its centre. Not measured: the evaluation set's burst frame (the
# camera moved by 40 %) lies at 0.74 (p50; p90 0.84) from its shot and pairs with nothing,
# which would make no component. Consecutive frames of a real burst are closer; these
# (a tenth as many frames as images) chain the frames' copies into components of ~30-380
# images holding 2-47 groups (the rest: copies too far to pair), the hard case for group
# upkeep.
FRAME_TO_CENTRE = ((0, 0.95), (50, 0.97), (100, 0.985))


def draw(quantiles: Sequence[tuple[float, float]], rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` cosines drawn from measured percentiles (inverse CDF, linear between them)."""
    ps, cs = zip(*quantiles, strict=True)
    return np.interp(rng.uniform(0, 100, size=n), ps, cs)


def around(centre: np.ndarray, cosines: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at exactly these cosines to ``centre``, in random directions."""
    noise = rng.normal(size=(len(cosines), len(centre))).astype(np.float32)
    noise -= np.outer(noise @ centre, centre)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    c = cosines[:, None].astype(np.float32)
    return (c * centre + np.sqrt(1 - c**2) * noise).astype(np.float32)


def near_phash(phash: int, bits: int, rng: np.random.Generator) -> int:
    flip = 0
    for b in rng.choice(63, size=bits, replace=False):
        flip |= 1 << int(b)
    return phash ^ flip


def encode_vector(v: np.ndarray) -> bytes:
    """pgvector's binary format: dims, an unused word, big-endian float32s."""
    return struct.pack(">HH", len(v), 0) + np.asarray(v, ">f4").tobytes()


@dataclass
class Component:
    """A burst: its images (in upload order) and the frames' vectors and pHashes."""

    ids: list[UUID]
    frames: np.ndarray
    frame_phashes: list[int]
    groups: int = 0
    pairs: int = 0


@dataclass
class Library:
    """What was loaded, kept to probe it: a sample of singles (id, vector) per tenant, and
    the bursts."""

    big: UUID
    small: list[UUID] = field(default_factory=list)
    loaded: int = 0  # images in the big tenant
    small_loaded: int = 0
    singles: dict[UUID, list[tuple[UUID, np.ndarray, int]]] = field(default_factory=dict)
    bursts: list[Component] = field(default_factory=list)
    chunks: int = 0

    def sample(self, tenant: UUID, image: UUID, vector: np.ndarray, phash: int) -> None:
        kept = self.singles.setdefault(tenant, [])
        if len(kept) < 400:
            kept.append((image, vector, phash))


@dataclass
class _Rows:
    images: list[tuple] = field(default_factory=list)  # type: ignore[type-arg]
    embeddings: list[tuple] = field(default_factory=list)  # type: ignore[type-arg]
    pairs: list[tuple] = field(default_factory=list)  # type: ignore[type-arg]
    groups: list[tuple] = field(default_factory=list)  # type: ignore[type-arg]
    members: list[tuple] = field(default_factory=list)  # type: ignore[type-arg]

    def image(
        self, tenant: UUID, vector: np.ndarray, phash: int, at: datetime, image_id: UUID
    ) -> None:
        self.images.append((image_id, tenant, phash, at))
        self.embeddings.append((image_id, tenant, MODEL, vector))


def _random_phash(rng: np.random.Generator) -> int:
    return int(rng.integers(-(2**63), 2**63 - 1))


def _burst(
    rows: _Rows, tenant: UUID, size: int, rng: np.random.Generator, at: datetime
) -> Component:
    centre = clustered_vectors(1, seed=int(rng.integers(1 << 30)))[0]
    frames_n = max(2, size // 10)
    frames = around(centre, draw(FRAME_TO_CENTRE, rng, frames_n), rng)
    frame_phashes = [_random_phash(rng) for _ in range(frames_n)]
    vectors, phashes = [], []
    while len(vectors) < size:
        f = int(rng.integers(frames_n))
        copies = int(rng.integers(1, 5))
        vectors += list(around(frames[f], draw(COPY_TO_CENTRE, rng, copies), rng))
        phashes += [
            near_phash(frame_phashes[f], int(rng.integers(0, 9)), rng) for _ in range(copies)
        ]
    vectors, phashes = vectors[:size], phashes[:size]
    ids = [uuid4() for _ in range(size)]
    for k, (i, v, p) in enumerate(zip(ids, vectors, phashes, strict=True)):
        rows.image(tenant, v, p, at + timedelta(seconds=k), i)
    sims = np.asarray(vectors) @ np.asarray(vectors).T
    pairs: list[Pair[UUID]] = []
    for k in range(1, size):
        earlier = sims[k, :k]
        best = np.argsort(-earlier)[:CANDIDATES]
        for j in best[earlier[best] >= COSINE_THRESHOLD]:
            a, b = sorted((ids[k], ids[j]))
            score = float(earlier[j])
            pairs.append(Pair(a, b, score))
            rows.pairs.append((a, b, tenant, "cnn", score, score))
    grouping = group(pairs, Rule.AVERAGE_LINK)
    for members in grouping.groups:
        gid = uuid4()
        rows.groups.append((gid, tenant, 1, at, at))
        rows.members += [(m, gid) for m in members]
    return Component(ids, frames, frame_phashes, len(grouping.groups), len(pairs))


def _chunk_rows(
    library: Library, tenant: UUID, count: int, rng: np.random.Generator, bursts: bool
) -> _Rows:
    rows = _Rows()
    start = datetime.now(UTC) - timedelta(days=365)
    in_bursts = int(count * BURST_SHARE) if bursts else 0
    while in_bursts >= BURST_SIZES[0]:
        size = min(in_bursts, int(rng.integers(BURST_SIZES[0], BURST_SIZES[1] + 1)))
        at = start + timedelta(seconds=float(rng.uniform(0, 365 * 86400)))
        library.bursts.append(_burst(rows, tenant, size, rng, at))
        in_bursts -= size
    singles = count - len(rows.images)
    vectors = clustered_vectors(singles, seed=int(rng.integers(1 << 30)))
    for v in vectors:
        image_id, phash = uuid4(), _random_phash(rng)
        at = start + timedelta(seconds=float(rng.uniform(0, 365 * 86400)))
        rows.image(tenant, v, phash, at, image_id)
        if rng.uniform() < 0.05:
            library.sample(tenant, image_id, v, phash)
    return rows


def _image_records(rows: _Rows) -> Iterator[tuple]:  # type: ignore[type-arg]
    for image_id, tenant, phash, at in rows.images:
        yield (
            image_id,
            tenant,
            f"originals/{image_id}",
            "image/jpeg",
            4_200_000,
            secrets.token_hex(32),
            "JPEG",
            4000,
            3000,
            "RGB",
            1,
            phash,
            at,
            at,
        )


async def _copy(conn: asyncpg.Connection, rows: _Rows) -> None:
    await conn.copy_records_to_table(
        "images",
        records=_image_records(rows),
        columns=[
            "id",
            "tenant_id",
            "object_key",
            "content_type",
            "byte_size",
            "sha256",
            "format",
            "width",
            "height",
            "mode",
            "frames",
            "phash",
            "created_at",
            "updated_at",
        ],
    )
    stages = []
    for image_id, _, _, at in rows.images:
        for k, stage in enumerate(("thumbnails", "hashing", "dedupe")):
            started = at + timedelta(milliseconds=20 + 60 * k)
            stages.append(
                (image_id, stage, "done", 1, at, started, started + timedelta(milliseconds=50))
            )
    await conn.copy_records_to_table(
        "image_stages",
        records=stages,
        columns=[
            "image_id",
            "stage",
            "status",
            "attempts",
            "queued_at",
            "started_at",
            "finished_at",
        ],
    )
    await conn.copy_records_to_table(
        "renditions",
        records=[
            (i, size, f"renditions/{i}/{size}.webp", "WEBP", size, size * 3 // 4, nbytes)
            for i, _, _, _ in rows.images
            for size, nbytes in RENDITIONS
        ],
        columns=["image_id", "size", "object_key", "format", "width", "height", "byte_size"],
    )
    await conn.copy_records_to_table(
        "duplicate_checks",
        records=[(i, "sha256+cnn+phash", at) for i, _, _, at in rows.images],
        columns=["image_id", "method", "checked_at"],
    )
    await conn.copy_records_to_table(
        "image_embeddings",
        records=rows.embeddings,
        columns=["image_id", "tenant_id", "model", "embedding"],
    )
    await conn.copy_records_to_table(
        "duplicate_pairs",
        records=rows.pairs,
        columns=["image_a", "image_b", "tenant_id", "method", "score", "cosine"],
    )
    await conn.copy_records_to_table(
        "duplicate_groups",
        records=rows.groups,
        columns=["id", "tenant_id", "version", "created_at", "updated_at"],
    )
    await conn.copy_records_to_table(
        "duplicate_group_members", records=rows.members, columns=["image_id", "group_id"]
    )


async def loading_connection(database_url: str) -> asyncpg.Connection:
    """A connection that loads fast: pgvector's binary codec, and no triggers (events,
    per-row advisory locks and foreign-key checks mean nothing for generated rows; the
    local stack's role is a superuser)."""
    conn = await asyncpg.connect(database_url)
    await conn.set_type_codec(
        "vector", schema="public", encoder=encode_vector, decoder=bytes, format="binary"
    )
    await conn.execute("SET session_replication_role = replica")
    return conn


async def add_small_tenants(
    conn: asyncpg.Connection, library: Library, tenants: int, images_each: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    ids = [uuid4() for _ in range(tenants)]
    await conn.copy_records_to_table(
        "tenants", records=[(t, f"scale-small-{t}") for t in ids], columns=["id", "name"]
    )
    for t in ids:
        await _copy(conn, _chunk_rows(library, t, images_each, rng, bursts=False))
    library.small += ids
    library.small_loaded += tenants * images_each


async def grow_big_tenant(
    conn: asyncpg.Connection, library: Library, size: int, seed: int
) -> float:
    """Load the big tenant up to ``size`` images; returns the seconds it took."""
    started = time.perf_counter()
    while library.loaded < size:
        count = min(CHUNK, size - library.loaded)
        rng = np.random.default_rng(seed * 1000 + library.chunks)
        rows = _chunk_rows(library, library.big, count, rng, bursts=True)
        await _copy(conn, rows)
        library.loaded += count
        library.chunks += 1
        print(f"scale: {library.loaded} images in the big tenant", flush=True)
    return time.perf_counter() - started

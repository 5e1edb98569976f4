"""The duplicate check's cost per upload in a tenant that already holds many alike images.

``bench --only dedupe_probe``. The 20,000-job soak (docs/operating/capacity.md) found the
deduper's check growing with the tenant: two thirds of it the geometric check's
candidates, their features recomputed from analysis copies fetched from S3. This runs
that case on a real PostgreSQL and SeaweedFS (the local stack, no workers): a tenant of
``N`` pictures of the soak's kind (64x48, a few random shapes: more than half of them
CNN-alike at 0.5), each stored as the pipeline stores it (the thumbnailer's analysis copy
in S3, the embedding in PostgreSQL), then new uploads checked as the worker checks them
(``checks.check_image`` with a ``StoreProbe``), in this process. Each way of probing has a
probe of its own, with the worker's cache size (256 images), as a pool process keeps it;
the ways take turns, upload by upload, so both see the same tenant and the same load.

Reported per upload checked: wall and CPU of the check (search, geometric check, record,
regroup), split into the probe's S3 fetches (wall), features made (CPU), pairs matched
(CPU) and the rest (the SQL, wall). Not measured: the upload's own embedding (bench
``--only dedupe``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np
from PIL import Image, ImageDraw

from bench.results import Measurement, Suite
from imgflow_contracts.keys import analysis_key, features_key
from imgflow_contracts.schema.migrate import run_migrations
from imgflow_contracts.settings import CommonSettings
from imgflow_deduper import overlap
from imgflow_deduper import repository as repo
from imgflow_deduper.checks import CheckPolicy, check_image
from imgflow_deduper.decision import GeometryThresholds
from imgflow_deduper.encoder import CPU, Encoder, embed_views
from imgflow_deduper.pixels import Normalisation, view_tensors
from imgflow_deduper.probe import FETCHERS, KeptFeatures, S3Features, StoreProbe
from imgflow_deduper.repository import EmbeddingSpace, SearchLimits
from imgflow_deduper.settings import DedupeSettings
from imgflow_localstack.ports import StackPorts
from imgflow_localstack.stack import LocalStack
from imgflow_runtime.storage import ObjectStore
from tools.build_model import ensure_model
from tools.dedupe_eval.image_signals import analysis_copy

DEFAULTS = DedupeSettings()


def soak_picture(i: int) -> bytes:
    """The soak's picture ``i`` (tests/faults/test_ten_thousand_queued.py ``tiny_png``)."""
    rng = random.Random(i)
    image = Image.new("RGB", (64, 48), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.randrange(48), rng.randrange(36)
        w, h = rng.randrange(8, 40), rng.randrange(6, 30)
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass
class Split:
    """Seconds spent over the uploads checked one way."""

    checks: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    fetch: float = 0.0  # S3 GETs (and PUTs) of the probe
    features: float = 0.0  # features made (or read) for the probe
    match: float = 0.0  # pairs checked
    search: float = 0.0  # the candidate search's SQL (repository.find_candidates)
    probed: list[int] = field(default_factory=list)
    made: int = 0  # features made
    read: int = 0  # features read where kept

    def ms(self, part: str) -> float:
        rest = self.wall - self.fetch - self.features - self.match - self.search
        value = rest if part == "rest" else None
        return 1000 * (getattr(self, part) if value is None else value) / max(1, self.checks)


@contextlib.contextmanager
def timed_search(split: Split) -> Iterator[None]:
    """The candidate search timed into ``split`` (checks.py calls it through the module)."""
    search = repo.find_candidates

    async def timed(*args: Any) -> list[repo.Candidate]:
        started = time.perf_counter()
        try:
            return await search(*args)
        finally:
            split.search += time.perf_counter() - started

    repo.find_candidates = timed  # type: ignore[assignment]
    try:
        yield
    finally:
        repo.find_candidates = search  # type: ignore[assignment]


class TimedProbe(StoreProbe):
    """The worker's probe, its pairs timed (its fetches and features time themselves)."""

    def __init__(
        self,
        fetch: Callable[[UUID], bytes | None],
        split: Split,
        kept: KeptFeatures | None,
        fetchers: int,
    ) -> None:
        super().__init__(fetch, kept=kept, fetchers=fetchers)
        self.split = split

    def __call__(self, subject: UUID, other: UUID) -> overlap.Overlap | None:
        a, b = self.features(subject), self.features(other)
        started = time.perf_counter()
        try:
            return None if a is None or b is None else overlap.overlap(a, b)
        finally:
            self.split.match += time.perf_counter() - started
            self.split.probed[-1] += 1


def _policy(dim: int) -> CheckPolicy:
    s = DEFAULTS
    return CheckPolicy(
        space=EmbeddingSpace(s.dedupe_model_name, dim),
        limits=SearchLimits(
            candidates=s.dedupe_candidates,
            phash_distance=max(s.dedupe_phash_max_distance, s.dedupe_combined_phash_distance),
            ef_search=s.dedupe_hnsw_ef_search,
            similar_candidates=s.dedupe_similar_candidates,
            probe_cosine=s.dedupe_probe_cosine,
        ),
        thresholds=s.thresholds(),
        geometry=GeometryThresholds(
            min_inliers=s.dedupe_geometry_min_inliers,
            duplicate_iou=s.dedupe_duplicate_iou,
            duplicate_agreement=s.dedupe_duplicate_agreement,
            rich_keypoints=s.dedupe_rich_keypoints,
            similar_agreement=s.dedupe_similar_agreement,
        ),
        probe_cosine=s.dedupe_probe_cosine,
    )


class Library:
    """A tenant's images, stored as the pipeline stores them."""

    def __init__(self, conn: asyncpg.Connection, store: ObjectStore, encoder: Encoder) -> None:
        self.conn, self.store, self.encoder = conn, store, encoder
        self.tenant = uuid4()
        self.norm = Normalisation.of(
            DEFAULTS.dedupe_input_size,
            DEFAULTS.dedupe_mean,
            DEFAULTS.dedupe_std,
            DEFAULTS.dedupe_detail_size,
        )
        self.policy = _policy(encoder.info.dim)

    async def create(self) -> None:
        await self.conn.execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $2)", self.tenant, f"bench-{self.tenant}"
        )

    async def add(self, picture: bytes) -> tuple[UUID, bytes, np.ndarray, np.ndarray]:
        """Store one image's row and analysis copy; its embeddings (not stored yet)."""
        image_id, copy = uuid4(), analysis_copy(picture)
        await self.conn.execute(
            """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256)
               VALUES ($1, $2, $3, 'image/png', $4, $5)""",
            image_id,
            self.tenant,
            f"originals/{image_id}",
            len(picture),
            hashlib.sha256(picture).hexdigest(),
        )
        self.store.put_bytes(analysis_key(image_id), copy, "image/jpeg")
        whole, views = embed_views(
            self.encoder, view_tensors(copy, self.norm, True), mirror_invariant=True
        )
        return image_id, copy, whole, views

    async def check(self, picture: bytes, probe: StoreProbe, split: Split) -> None:
        """Store and embed a new upload, then check it (only the check timed)."""
        image_id, copy, whole, views = await self.add(picture)
        wall, cpu = time.perf_counter(), time.process_time()
        probe.seed(image_id, copy)
        await check_image(self.conn, image_id, whole, self.policy, views, probe)
        split.wall += time.perf_counter() - wall
        split.cpu += time.process_time() - cpu
        split.checks += 1


@dataclass
class Backfill:
    """Every stored image's features made and kept once, as checks leave them."""

    images: int = 0
    seconds: float = 0.0
    bytes: int = 0


async def _grow(library: Library, ids: list[UUID], size: int) -> None:
    """Store images until the tenant holds ``size``; keep each one's features once (its
    own check, or the first check that met it, leaves them): the ways that read kept
    features find every stored image's."""
    added = []
    for i in range(len(ids), size):  # checked as they came, without the geometric check
        image_id, _, whole, views = await library.add(soak_picture(i))
        await check_image(library.conn, image_id, whole, library.policy, views, None)
        added.append(image_id)
    ids += added
    await library.conn.execute("ANALYZE")
    store = library.store
    filler = StoreProbe(lambda i: store.get_bytes_if_exists(analysis_key(i)),
                        kept=S3Features(store), fetchers=FETCHERS)  # fmt: skip
    filler.prefetch(added)


async def _measure(
    library: Library, sizes: tuple[int, ...], uploads: int, ways: dict[str, Way]
) -> tuple[dict[int, dict[str, Split]], Backfill]:
    """Each way's checks at each tenant size. A way's probe lives through the sizes, as a
    pool process does; each size starts with a warm-up upload per way, not counted."""
    await library.create()
    ids: list[UUID] = []
    probes = {name: way.probe(library.store, Split()) for name, way in ways.items()}
    uploaded = 0
    out: dict[int, dict[str, Split]] = {}
    for size in sizes:
        await _grow(library, ids, size)
        splits = out[size] = {name: Split() for name in ways}
        for k in range(uploads + 1):
            for name in list(ways)[:: 1 if k % 2 == 0 else -1]:
                probe, split = probes[name], splits[name] if k else Split()
                probe.split, before = split, replace(probe.stats)
                split.probed.append(0)
                uploaded += 1
                with timed_search(split):
                    await library.check(soak_picture(1_000_000 + uploaded), probe, split)
                after = probe.stats
                split.fetch += after.fetch_s - before.fetch_s
                split.features += after.make_s - before.make_s
                split.made += after.made - before.made
                split.read += after.read - before.read
    # the cost of keeping an image's features the first time, and their size
    store = library.store
    sample = ids[:50]
    for image_id in sample:
        store.delete(features_key(image_id))
    filler = StoreProbe(lambda i: store.get_bytes_if_exists(analysis_key(i)),
                        kept=S3Features(store), fetchers=FETCHERS)  # fmt: skip
    started = time.perf_counter()
    filler.prefetch(sample)
    backfill = Backfill(len(sample), time.perf_counter() - started)
    backfill.bytes = sum(len(store.get_bytes(features_key(i))) for i in sample)
    return out, backfill


@dataclass(frozen=True)
class Way:
    """A way of probing: features kept or not, fetched one by one or side by side."""

    kept: bool
    fetchers: int

    def probe(self, store: ObjectStore, split: Split) -> TimedProbe:
        def copy(image_id: UUID) -> bytes | None:
            return store.get_bytes_if_exists(analysis_key(image_id))

        kept = S3Features(store) if self.kept else None
        return TimedProbe(copy, split, kept, self.fetchers)


BEFORE = "made from analysis copies, one by one (before)"
WAYS = {
    BEFORE: Way(kept=False, fetchers=1),
    "kept features, one by one": Way(kept=True, fetchers=1),
    f"kept features, {FETCHERS} side by side (now)": Way(kept=True, fetchers=FETCHERS),
}


PARTS = (
    ("wall", "ms", "check, wall"),
    ("cpu", "CPU ms", "check, CPU"),
    ("fetch", "ms", "S3 fetches, wall"),
    ("features", "ms", "features made, wall"),
    ("match", "ms", "pairs matched, wall"),
    ("search", "ms", "candidate search (SQL), wall"),
    ("rest", "ms", "the rest (record, regroup, restack: SQL), wall"),
)


def _measurements(size: int, splits: dict[str, Split]) -> list[Measurement]:
    out = []
    for name, split in splits.items():
        for part, unit, label in PARTS:
            baseline = None if name == BEFORE else f"{label}, {BEFORE} ({size} images)"
            out.append(Measurement(f"{label}, {name} ({size} images)", split.ms(part),
                                   f"{unit}/upload", baseline=baseline))  # fmt: skip
        out += [
            Measurement(f"pairs probed per upload, {name} ({size} images)",
                        statistics.mean(split.probed), "pairs"),
            Measurement(f"features made per upload, {name} ({size} images)",
                        split.made / split.checks, "features"),
            Measurement(f"features read where kept per upload, {name} ({size} images)",
                        split.read / split.checks, "features"),
        ]  # fmt: skip
    return out


def run(quick: bool = False) -> Suite:
    sizes, uploads = ((30, 60), 4) if quick else ((250, 1000), 20)
    model = ensure_model()
    with tempfile.TemporaryDirectory(prefix="imgflow-bench-probe-") as folder:
        stack = LocalStack(Path(folder), StackPorts.free())
        with stack:
            run_migrations(stack.database_url)
            saved = dict(os.environ)
            os.environ.update(stack.env())
            try:
                store = ObjectStore.from_settings(CommonSettings())
            finally:
                os.environ.clear()
                os.environ.update(saved)
            encoder = Encoder(str(model), [CPU], 1)

            async def go() -> tuple[dict[int, dict[str, Split]], Backfill]:
                conn = await asyncpg.connect(stack.database_url)
                try:
                    return await _measure(Library(conn, store, encoder), sizes, uploads, WAYS)
                finally:
                    await conn.close()

            by_size, backfill = asyncio.run(go())
    measurements = [m for size, splits in by_size.items() for m in _measurements(size, splits)]
    small, big = sizes
    for name in WAYS:  # what grows with the tenant, each way
        before, after = by_size[small][name], by_size[big][name]
        measurements.append(
            Measurement(
                f"check CPU at {big} images over at {small}, {name}",
                after.ms("cpu") / before.ms("cpu"),
                "x",
            )
        )
    measurements += [
        Measurement("features kept: made and written once (the first check to meet an "
                    "image), side by side", 1000 * backfill.seconds / backfill.images,
                    "ms/image"),
        Measurement("features kept: size of the object in S3",
                    backfill.bytes / backfill.images, "bytes/image"),
    ]  # fmt: skip
    notes = [
        f"One tenant of the soak's pictures (64x48, random shapes), grown to {small} then "
        f"{big}; at each size {uploads} uploads checked each way (after one warm-up each), "
        "the ways taking turns; PostgreSQL and SeaweedFS of the local stack on this "
        "machine, the check in this process (one thread for the model). Every stored "
        "image's features were made and kept once as it was stored (as checks leave them); "
        "the first way never reads them (the deduper before they were kept); each way has "
        "its own probe with an in-memory cache of 256 images, living through both sizes as "
        "a pool process does.",
        "Timed: the check alone (checks.check_image), not the upload's embedding. Parts in "
        "wall time (the machine is shared: see its load); the rest is the check's wall less "
        "the probe's parts and the search: recording pairs, regrouping, restacking. The "
        "check's CPU is this process's, not PostgreSQL's or SeaweedFS's.",
    ]
    return Suite("Deduper: the check per upload in a tenant of alike images", measurements, notes)

"""The deduper's CPU cost per upload: today's pipeline against the one it replaced.

Both run on the same 12-megapixel JPEGs (bench/images.py), taking turns, in CPU time,
never wall time. Each pipeline runs in a process of its own: ONNX Runtime's idle pool
threads can spin for a long while after a run (the baseline's do), and in one shared
process that CPU would be billed to whatever ran next. A child's process time covers
every thread it has, so a pipeline pays for its own spinning (but for the spin after its
last image, which favours the baseline); decode and views are
billed by the main thread's own CPU time, and all the rest to inference. Measured: the
deduper's own work on an upload's bytes, decode to embeddings. Not measured: the S3 GET
and the SQL, the same in both.

The baseline is the deduper as first merged (commit 72e0b92), rebuilt here from the same
weights: JPEG decoded at the DCT scale keeping 448 px (1/4 of a 12 MP photo), five crops
copied out, each shrunk to 112 px and scaled back up to the 224 px model, normalised one
by one, then two session runs (whole + mirror, the five crops) on threads that spin when
idle (ONNX Runtime's default). Both get the worker's thread count: its CPU share over
one pool process.

The geometric check (issue 28) is measured in the same child as today's pipeline, on the
same images, so "with" and "without" are one process's figures: for each upload, the
features of its analysis copy (the thumbnailer's 512 px JPEG, made beforehand as the
thumbnailer makes it before the deduper runs) and the check against one look-alike (a
burst frame of the same photo: shifted, rolled, re-lit), whose features a burst's check
finds in the process's cache. A look-alike not in the cache costs its features again
(and an S3 GET, not measured). An upload with no look-alike pays none of it.
"""

from __future__ import annotations

import io
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from bench.dedupe_search import measure_search
from bench.images import FULL, SMALL, ensure_images
from bench.results import Measurement, Suite
from imgflow_contracts.keys import ANALYSIS_LONG_SIDE
from imgflow_deduper import overlap
from imgflow_deduper.alignment import align
from imgflow_deduper.encoder import CPU, Encoder, cpu_share, embed_views
from imgflow_deduper.pixels import VIEW_BOXES, Normalisation, view_tensors
from imgflow_deduper.probe import features_of
from imgflow_deduper.settings import DedupeSettings
from tools.build_model import ensure_model, weights_path
from tools.embedding_model.onnx_export import build_embedding_model
from tools.embedding_model.torch_legacy import load_legacy_state_dict

MEAN, STD = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502)
# The worker's floor: a fit with fewer inliers is measured no further.
MIN_INLIERS = DedupeSettings().dedupe_geometry_min_inliers


@dataclass
class Cost:
    """CPU seconds spent, summed over images."""

    pixels: float = 0.0
    inference: float = 0.0
    images: int = 0
    # the geometric check, where measured: the upload's features, one pair checked (with
    # its cells' and its matches' motion, the worker's default; and without, as before stacks10)
    features: float = 0.0
    pair: float = 0.0
    pair_still: float = 0.0
    # one look-alike that shares nothing (another upload): every figure measured, as
    # before; and stopped at a fit too poor to judge, as the worker does now
    unshared_full: float = 0.0
    unshared: float = 0.0
    # ...and its thumbnails aligned as well (stacks13: where nothing else relates a pair)
    unshared_aligned: float = 0.0

    def per_image_ms(self, part: str) -> float:
        parts = {"total": self.pixels + self.inference,
                 "checked": self.pixels + self.inference + self.features + self.pair}  # fmt: skip
        return 1000 * parts.get(part, getattr(self, part, 0.0)) / self.images

    def add(self, other: Cost) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


class Before:
    """The deduper of commit 72e0b92: 224 px model, 112 px low-pass, 1/4-scale decode."""

    def __init__(self, threads: int) -> None:
        model = build_embedding_model(load_legacy_state_dict(weights_path()), 224, {})
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=[CPU]
        )

    @staticmethod
    def pixels(data: bytes) -> np.ndarray:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (448, 448))
        image = ImageOps.exif_transpose(image).convert("RGB")
        w, h = image.size
        views = [image] + [
            image.crop((round(a * w), round(b * h), round(c * w), round(d * h)))
            for a, b, c, d in VIEW_BOXES
        ]
        mean = np.asarray(MEAN, np.float32)[:, None, None]
        std = np.asarray(STD, np.float32)[:, None, None]
        tensors = []
        for view in views:
            small = view.resize((112, 112), Image.Resampling.BILINEAR, reducing_gap=2.0)
            square = small.resize((224, 224), Image.Resampling.BILINEAR, reducing_gap=2.0)
            array = np.asarray(square, dtype=np.float32).transpose(2, 0, 1) / 255.0
            tensors.append((array - mean) / std)
        return np.stack(tensors)

    def embed(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        whole = pixels[:1]
        pair = np.ascontiguousarray(np.concatenate([whole, whole[:, :, :, ::-1]]))
        (both,) = self.session.run(None, {"pixels": pair})
        (views,) = self.session.run(None, {"pixels": np.ascontiguousarray(pixels[1:])})
        vector = both[0] + both[1]
        return vector / np.linalg.norm(vector), views


class Now:
    """The worker's own code path, with its default settings."""

    def __init__(self, threads: int) -> None:
        defaults = DedupeSettings.model_fields
        self.norm = Normalisation.of(
            defaults["dedupe_input_size"].default,
            defaults["dedupe_mean"].default,
            defaults["dedupe_std"].default,
            defaults["dedupe_detail_size"].default,
        )
        self.encoder = Encoder(str(ensure_model()), [CPU], threads)

    def pixels(self, data: bytes) -> np.ndarray:
        return view_tensors(data, self.norm, with_sub_views=True)

    def embed(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return embed_views(self.encoder, pixels, mirror_invariant=True)


PIPELINES: dict[str, Callable[[int], Before | Now]] = {"before": Before, "now": Now}


def analysis_copy(data: bytes) -> bytes:
    """The thumbnailer's analysis copy, near enough: the long side at 512 px, JPEG."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (ANALYSIS_LONG_SIDE, ANALYSIS_LONG_SIDE))
        copy = ImageOps.exif_transpose(image).convert("RGB")
    copy.thumbnail((ANALYSIS_LONG_SIDE, ANALYSIS_LONG_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    copy.save(out, "JPEG", quality=90)
    return out.getvalue()


def burst_frame(data: bytes) -> bytes:
    """A look-alike: the next frame of a burst (the camera moved by a tenth and rolled
    2 degrees, the light changed), as its analysis copy."""
    with Image.open(io.BytesIO(analysis_copy(data))) as image:
        w, h = image.size
        frame = image.crop((w // 10, 0, w, h)).rotate(2.0, Image.Resampling.BILINEAR)
    frame = frame.point(lambda v: min(255, round(v * 1.1)))
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=90)
    return out.getvalue()


def _check(
    copy: bytes, lookalike: overlap.Features, unshared: overlap.Features, cost: Cost
) -> None:
    """The geometric check of one upload against one look-alike: what the worker adds;
    and against one that shares nothing, both ways."""
    started = time.process_time()
    mine = features_of(copy)
    made = time.process_time()
    overlap.overlap(mine, lookalike, MIN_INLIERS)
    checked = time.process_time()
    overlap.overlap(mine, lookalike, MIN_INLIERS, motion=False)
    still = time.process_time()
    overlap.overlap(mine, unshared)
    full = time.process_time()
    overlap.overlap(mine, unshared, MIN_INLIERS)
    stopped = time.process_time()
    align(mine.thumb, unshared.thumb)
    cost.features += made - started
    cost.pair += checked - made
    cost.pair_still += still - checked
    cost.unshared_full += full - still
    cost.unshared += stopped - full
    cost.unshared_aligned += time.process_time() - full


def _measure(pipeline: Before | Now, data: bytes, cost: Cost) -> None:
    started, started_main = time.process_time(), time.thread_time()
    pixels = pipeline.pixels(data)
    decoding = time.thread_time() - started_main
    pipeline.embed(pixels)
    cost.pixels += decoding
    cost.inference += time.process_time() - started - decoding
    cost.images += 1


def _cost_of(name: str, threads: int, paths: list[Path], checked: bool = False) -> Cost:
    """In a child process: one pipeline over every image (after a warm-up); ``checked``:
    the geometric check of each image too, timed apart."""
    images = [p.read_bytes() for p in paths]
    pipeline = PIPELINES[name](threads)
    pipeline.embed(pipeline.pixels(images[0]))  # first runs allocate and pick kernels
    if checked:  # made before the upload's check: the thumbnailer's copy, cached features
        copies = [analysis_copy(data) for data in images]
        lookalikes = [features_of(burst_frame(data)) for data in images]
        unshared = [features_of(copy) for copy in copies[1:] + copies[:1]]  # the next one
        _check(copies[0], lookalikes[0], unshared[0], Cost())  # warm-up
    cost = Cost()
    for k, data in enumerate(images):
        _measure(pipeline, data, cost)
        if checked:
            _check(copies[k], lookalikes[k], unshared[k], cost)
    return cost


def _ms(name: str, cost: Cost, part: str, baseline: str | None = None) -> Measurement:
    return Measurement(name, cost.per_image_ms(part), "CPU ms/image", baseline=baseline)


def run(quick: bool = False) -> Suite:
    spec = SMALL if quick else FULL
    paths = ensure_images(2 if quick else 8, spec)
    ensure_model()  # before the children start, so that none of them builds it
    threads = cpu_share()
    runs = {
        "before": ("before", threads, False),
        "now": ("now", threads, True),  # with the geometric check, timed apart
        "now, 1 thread": ("now", 1, False),
    }
    costs = {name: Cost() for name in runs}
    spawn = multiprocessing.get_context("spawn")  # no ONNX Runtime state crosses a fork
    for turn in range(1 if quick else 2):
        order = list(runs) if turn % 2 == 0 else list(runs)[::-1]
        for name in order:
            with ProcessPoolExecutor(1, mp_context=spawn) as child:
                pipeline, threads_, checked = runs[name]
                cost = child.submit(_cost_of, pipeline, threads_, paths, checked).result()
            costs[name].add(cost)

    before, now = costs["before"], costs["now"]
    label = f"{spec.width}x{spec.height} JPEG"
    measurements = [
        _ms(f"upload, before ({label})", before, "total"),
        _ms(f"upload, now ({label})", now, "total", f"upload, before ({label})"),
        _ms("decode + 6 views, before", before, "pixels"),
        _ms("decode + 6 views, now", now, "pixels", "decode + 6 views, before"),
        _ms("inference (7 inputs), before", before, "inference"),
        _ms("inference (7 inputs), now", now, "inference", "inference (7 inputs), before"),
        _ms(
            "inference (7 inputs), now, 1 thread",
            costs["now, 1 thread"],
            "inference",
            "inference (7 inputs), now",
        ),
        # the geometric check, measured in the same child processes as "now"
        _ms(
            f"upload with one look-alike, now + geometric check ({label})",
            now,
            "checked",
            f"upload, now ({label})",
        ),
        _ms("geometric check: the upload's features (512 px analysis copy)", now, "features"),
        _ms(
            "geometric check: one look-alike, no motion measured (before stacks10)",
            now,
            "pair_still",
        ),
        _ms(
            "geometric check: one look-alike checked (match, RANSAC, agreement, motion)",
            now,
            "pair",
            "geometric check: one look-alike, no motion measured (before stacks10)",
        ),
        _ms(
            "geometric check: one sharing nothing, every figure measured (before)",
            now,
            "unshared_full",
        ),
        _ms(
            "geometric check: one sharing nothing, stopped at a fit too poor to judge (now)",
            now,
            "unshared",
            "geometric check: one sharing nothing, every figure measured (before)",
        ),
        _ms(
            "geometric check: one sharing nothing, stopped, then its thumbnails aligned",
            now,
            "unshared_aligned",
            "geometric check: one sharing nothing, stopped at a fit too poor to judge (now)",
        ),
        *measure_search(quick),  # bench/dedupe_search.py: the candidates it runs on
    ]
    mean_bytes = sum(p.stat().st_size for p in paths) / len(paths)
    notes = [
        f"{len(paths)} images of {mean_bytes / 1e6:.1f} MB on average, each measured "
        f"{costs['now'].images // len(paths)} time(s) per pipeline; {threads} inference "
        "thread(s) (the worker's CPU share over one pool process) unless named.",
        "Before: 224 px model fed a 112 px low-pass, JPEG decoded at 1/4 scale, two session "
        "runs on spinning threads. Now: 96 px model, JPEG decoded at 1/8 scale, every view "
        "resized straight from that one image, one session run, threads that sleep when idle.",
        'Geometric check (OpenCV, one thread): measured beside "now" in the same child '
        "processes on the same uploads; its features come from the 512 px analysis copy, "
        "whatever the upload's size. Each further look-alike adds one pair checked, plus the "
        "features again (and an S3 GET) when not in the process's cache. One that shares "
        "nothing (the next upload's copy, the usual candidate) stops, since this round, at a "
        f"fit of fewer than {MIN_INLIERS} inliers (the worker's floor): its agreement and "
        "spreads decide nothing (overlap.overlap's min_inliers).",
        "Candidate search (bench/dedupe_search.py): a throwaway PostgreSQL, one tenant of "
        "scenes of 3 shots x 20 copies (each shot's copies one duplicate group), a new frame "
        "searched with the 20 nearest alone and with the similar check's candidates (the "
        "nearest of each other group, IMGFLOW_DEDUPE_SIMILAR_CANDIDATES=20); median ms of "
        "the SQL, and the candidates the geometric check then runs on (CNN >= 0.5).",
    ]
    return Suite("Deduper: CPU per upload, now against before", measurements, notes=notes)

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
"""

from __future__ import annotations

import io
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from bench.images import FULL, SMALL, ensure_images
from bench.results import Measurement, Suite
from imgflow_deduper.encoder import CPU, Encoder, cpu_share, embed_views
from imgflow_deduper.pixels import VIEW_BOXES, Normalisation, view_tensors
from imgflow_deduper.settings import DedupeSettings
from tools.build_model import ensure_model, weights_path
from tools.embedding_model.onnx_export import build_embedding_model
from tools.embedding_model.torch_legacy import load_legacy_state_dict

MEAN, STD = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502)


@dataclass
class Cost:
    """CPU seconds spent, summed over images."""

    pixels: float = 0.0
    inference: float = 0.0
    images: int = 0

    def per_image_ms(self, part: str) -> float:
        total = self.pixels + self.inference if part == "total" else getattr(self, part)
        return 1000 * total / self.images


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


def _measure(pipeline: Before | Now, data: bytes, cost: Cost) -> None:
    started, started_main = time.process_time(), time.thread_time()
    pixels = pipeline.pixels(data)
    decoding = time.thread_time() - started_main
    pipeline.embed(pixels)
    cost.pixels += decoding
    cost.inference += time.process_time() - started - decoding
    cost.images += 1


def _cost_of(name: str, threads: int, paths: list[Path]) -> Cost:
    """In a child process: one pipeline over every image (after a warm-up)."""
    images = [p.read_bytes() for p in paths]
    pipeline = PIPELINES[name](threads)
    pipeline.embed(pipeline.pixels(images[0]))  # first runs allocate and pick kernels
    cost = Cost()
    for data in images:
        _measure(pipeline, data, cost)
    return cost


def _ms(name: str, cost: Cost, part: str, baseline: str | None = None) -> Measurement:
    return Measurement(name, cost.per_image_ms(part), "CPU ms/image", baseline=baseline)


def run(quick: bool = False) -> Suite:
    spec = SMALL if quick else FULL
    paths = ensure_images(2 if quick else 8, spec)
    ensure_model()  # before the children start, so that none of them builds it
    threads = cpu_share()
    runs = {"before": ("before", threads), "now": ("now", threads), "now, 1 thread": ("now", 1)}
    costs = {name: Cost() for name in runs}
    spawn = multiprocessing.get_context("spawn")  # no ONNX Runtime state crosses a fork
    for turn in range(1 if quick else 2):
        order = list(runs) if turn % 2 == 0 else list(runs)[::-1]
        for name in order:
            with ProcessPoolExecutor(1, mp_context=spawn) as child:
                cost = child.submit(_cost_of, *runs[name], paths).result()
            costs[name].pixels += cost.pixels
            costs[name].inference += cost.inference
            costs[name].images += cost.images

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
    ]
    mean_bytes = sum(p.stat().st_size for p in paths) / len(paths)
    notes = [
        f"{len(paths)} images of {mean_bytes / 1e6:.1f} MB on average, each measured "
        f"{costs['now'].images // len(paths)} time(s) per pipeline; {threads} inference "
        "thread(s) (the worker's CPU share over one pool process) unless named.",
        "Before: 224 px model fed a 112 px low-pass, JPEG decoded at 1/4 scale, two session "
        "runs on spinning threads. Now: 96 px model, JPEG decoded at 1/8 scale, every view "
        "resized straight from that one image, one session run, threads that sleep when idle.",
    ]
    return Suite("Deduper: CPU per upload, now against before", measurements, notes=notes)

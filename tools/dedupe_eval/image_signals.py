"""Every image's signals, computed as production computes them.

The thumbnailer's analysis copy (its own code), the hasher's pHash of it, the deduper's
embeddings of it (whole frame and sub-views). This is the slow part (about 16 ms an
image with EfficientNet on one core, 150 ms with SSCD), so it is cached under
.bench/eval-dedupe/cache/, keyed by the images' bytes, the model file, the pixel
settings and the source of this module and of every package that makes the signals:
any change to those computes them again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

import imgflow_contracts
import imgflow_deduper
import imgflow_hasher
import imgflow_runtime
import imgflow_thumbnailer
from imgflow_contracts.keys import ANALYSIS_LONG_SIDE
from imgflow_deduper.encoder import Encoder, embed_views
from imgflow_deduper.pixels import Normalisation, view_tensors
from imgflow_hasher.analysis import analyse
from imgflow_thumbnailer.rendering import render_with_analysis
from imgflow_thumbnailer.settings import ThumbnailerSettings
from tools.dedupe_eval.dataset import Sample


@dataclass(frozen=True)
class ModelSpec:
    """One embedding model and how the deduper feeds it."""

    name: str
    path: Path
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sub_views: bool = True
    mirror_invariant: bool = True
    threads: int = 1

    def normalisation(self) -> Normalisation:
        return Normalisation.of(self.input_size, self.mean, self.std)


@dataclass(frozen=True)
class ImageSignals:
    embeddings: np.ndarray  # (N, D) whole frames
    views: np.ndarray | None  # (N, 5, D) sub-views
    phashes: np.ndarray  # (N,) uint64
    digests: np.ndarray  # (N,) SHA-256 hex of the uploaded bytes
    embed_cpu_ms: float  # decode + views + inference, per image, this process's CPU


def analysis_copy(data: bytes) -> bytes:
    """What the hasher and the deduper decode in production: the thumbnailer's analysis
    copy of the original (keys.analysis_key), made by the thumbnailer's own code."""
    settings = ThumbnailerSettings()  # its sizes and fit decide where the copy comes from
    rendered = render_with_analysis(
        data,
        settings.thumbnail_sizes,
        fit=settings.thumbnail_fit,
        options=settings.encode_options(),
        analysis_side=ANALYSIS_LONG_SIDE,
    )
    assert rendered.analysis is not None
    return rendered.analysis


# Modules that only use the signals (the deduper's, the grouping in imgflow_runtime), or
# make other ones (the geometric check: geometry.py keys its own cache):
# changing them must not recompute them.
AFTER_SIGNALS = {"decision.py", "strength.py", "grouping.py", "duplicate_groups.py", "checks.py",
                 "repository.py", "overlap.py", "probe.py", "worker.py"}  # fmt: skip


def _code_digest() -> str:
    """The source of every package that makes a signal, and the libraries doing the work."""
    digest = hashlib.sha256()
    packages = (imgflow_contracts, imgflow_runtime, imgflow_thumbnailer, imgflow_hasher,
                imgflow_deduper)  # fmt: skip
    for package in packages:
        for path in sorted(Path(package.__file__).parent.rglob("*.py")):
            # the deduper's settings reach the signals through the ModelSpec (in the key)
            deduper_settings = package is imgflow_deduper and path.name == "settings.py"
            if path.name not in AFTER_SIGNALS and not deduper_settings:
                digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())
    for lib in ("pillow", "onnxruntime", "numpy", "imagehash", "pillow-heif"):
        digest.update(importlib.metadata.version(lib).encode())
    return digest.hexdigest()


def _cache_key(samples: list[Sample], spec: ModelSpec) -> str:
    digest = hashlib.sha256(_code_digest().encode())
    digest.update(hashlib.sha256(spec.path.read_bytes()).digest())
    digest.update(repr((spec.input_size, spec.mean, spec.std, spec.sub_views,
                        spec.mirror_invariant)).encode())  # fmt: skip
    for s in samples:
        digest.update(hashlib.sha256(s.data).digest())
    return digest.hexdigest()[:24]


WORKERS = 3


def _signals_of(
    samples: list[Sample], spec: ModelSpec
) -> tuple[list[tuple[np.ndarray, np.ndarray, int]], float]:
    """Whole-frame and sub-view embeddings and pHash of each sample; embedding CPU seconds."""
    encoder = Encoder(str(spec.path), ["CPUExecutionProvider"], spec.threads)
    norm = spec.normalisation()
    out, embed_cpu = [], 0.0
    for sample in samples:
        copy = analysis_copy(sample.data)
        phash = analyse(sample.data, upright_copy=copy).phash
        started = time.process_time()
        vector, sub = embed_views(
            encoder,
            view_tensors(copy, norm, spec.sub_views),
            mirror_invariant=spec.mirror_invariant,
        )
        embed_cpu += time.process_time() - started
        out.append((vector, sub, phash))
    return out, embed_cpu


def image_signals(samples: list[Sample], spec: ModelSpec, cache: Path | None) -> ImageSignals:
    path = cache / f"{spec.name}-{_cache_key(samples, spec)}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as stored:
            views = stored["views"] if stored["views"].size else None
            return ImageSignals(stored["embeddings"], views, stored["phashes"],
                                stored["digests"], float(stored["embed_cpu_ms"]))  # fmt: skip
    # in a few processes: each loads the model once and signs a share of the images
    chunks = [samples[k::WORKERS] for k in range(WORKERS)]
    with ProcessPoolExecutor(WORKERS, mp_context=get_context("spawn")) as pool:
        parts = list(pool.map(_signals_of, chunks, [spec] * WORKERS))
    order = [k for c in range(WORKERS) for k in range(c, len(samples), WORKERS)]
    whole, views, phashes = [[None] * len(samples) for _ in range(3)]
    for position, item in zip(order, (x for p in parts for x in p[0]), strict=True):
        whole[position], views[position], phashes[position] = item
    embed_cpu = sum(p[1] for p in parts)
    signals = ImageSignals(
        embeddings=np.stack(whole),
        views=np.stack(views) if spec.sub_views else None,
        phashes=np.array(phashes, dtype=np.int64).view(np.uint64),
        digests=np.array([hashlib.sha256(s.data).hexdigest() for s in samples]),
        embed_cpu_ms=1000 * embed_cpu / len(samples),
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        empty = np.zeros(0, np.float32)
        np.savez(path, embeddings=signals.embeddings, phashes=signals.phashes,
                 views=signals.views if signals.views is not None else empty,
                 digests=signals.digests, embed_cpu_ms=signals.embed_cpu_ms)  # fmt: skip
    return signals

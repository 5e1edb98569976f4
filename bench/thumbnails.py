"""Thumbnails of 12-megapixel JPEGs (3-5 MB): the decision record's way, libvips, and ours.

Every approach makes the same three WebP renditions (600, 300 and 150 px on the long
side, quality 82, the same WebP effort) from the same bytes in memory, so the figures
differ only by how each decodes and resizes:

(a) the decision record's task: open the original and resize it once per size;
(b) libvips through pyvips ``thumbnail`` (shrink-on-load), once per size as its
    documentation shows, and as a cascade (600 from the original, 300 and 150 from it);
(c) imgflow's thumbnailer: one DCT-scaled decode, then each size from the next larger.

Rounds visit the images in turn and the approaches in a rotating order, so a busy moment
on a shared machine lands on all of them; the figure is the median per image. libvips
runs on one thread as the comparison (a Celery prefork child per core is how the
thumbnailer scales), and again with its default thread pool for its best latency.
Peak memory is read in a fresh process per approach: the high-water resident size while
it processes the images, above the same process's size just before.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pyvips
from PIL import Image
from skimage.metrics import structural_similarity

from bench.images import FULL, SMALL, ensure_images
from bench.results import Measurement, Suite, Table
from imgflow_contracts.keys import ANALYSIS_LONG_SIDE
from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat
from imgflow_thumbnailer.geometry import fit_inside
from imgflow_thumbnailer.rendering import render_renditions, render_with_analysis

SIZES = (600, 300, 150)
QUALITY = 82
WEBP_METHOD = EncodeOptions().webp_method  # the thumbnailer's default, for every approach
# One effort for every size here, so the approaches differ only by decode and resize; the
# per-size choice (EncodeOptions.webp_method_by_size) has its own table.
SAME_EFFORT = EncodeOptions(quality=QUALITY, webp_method=WEBP_METHOD, webp_method_by_size=())
LANCZOS = Image.Resampling.LANCZOS

# Operation caching would let libvips answer a repeated call from memory.
pyvips.cache_set_max(0)

Approach = Callable[[bytes], list[bytes]]


def naive(data: bytes) -> list[bytes]:
    """(a) The decision record's task: the original, opened and resized once per size."""
    out = []
    for size in SIZES:
        with Image.open(io.BytesIO(data)) as original:
            image = original.convert("RGB")
        image = image.resize(fit_inside(*image.size, size), LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, "WEBP", quality=QUALITY, method=WEBP_METHOD)
        out.append(buffer.getvalue())
    return out


def vips_per_size(data: bytes) -> list[bytes]:
    """(b) libvips ``thumbnail`` per size: each call shrinks on load from the original."""
    return [
        pyvips.Image.thumbnail_buffer(data, size, height=size).webpsave_buffer(
            Q=QUALITY, effort=WEBP_METHOD
        )
        for size in SIZES
    ]


def vips_cascade(data: bytes) -> list[bytes]:
    """(b) libvips ``thumbnail`` once, then ``thumbnail_image`` from each previous size."""
    out = []
    image = pyvips.Image.thumbnail_buffer(data, SIZES[0], height=SIZES[0]).copy_memory()
    for size in SIZES:
        if size != SIZES[0]:
            image = image.thumbnail_image(size, height=size).copy_memory()
        out.append(image.webpsave_buffer(Q=QUALITY, effort=WEBP_METHOD))
    return out


def ours(data: bytes, options: EncodeOptions | None = None) -> list[bytes]:
    """(c) imgflow's thumbnailer."""
    options = options or SAME_EFFORT
    return [r.data for r in render_renditions(data, SIZES, options=options)]


def ours_with_copy(data: bytes) -> list[bytes]:
    """(c) as the worker runs it: the renditions and the hasher's and deduper's analysis
    copy, from one decode."""
    rendered = render_with_analysis(
        data, SIZES, options=SAME_EFFORT, analysis_side=ANALYSIS_LONG_SIDE
    )
    return [*(r.data for r in rendered.renditions), rendered.analysis or b""]


def _vips_threads(threads: int) -> Callable[[Approach], Approach]:
    def wrap(approach: Approach) -> Approach:
        def run(data: bytes) -> list[bytes]:
            pyvips.concurrency_set(threads)
            return approach(data)

        return run

    return wrap


A = "(a) decision record: open + resize per size"
B_PER_SIZE = "(b) libvips thumbnail per size, 1 thread"
B_CASCADE = "(b) libvips thumbnail cascade, 1 thread"
B_THREADED = "libvips thumbnail cascade, default threads"
C = "(c) imgflow thumbnailer"
C_COPY = "(c) + the 512 px analysis copy (the worker's task)"

APPROACHES: dict[str, Approach] = {
    A: naive,
    B_PER_SIZE: _vips_threads(1)(vips_per_size),
    B_CASCADE: _vips_threads(1)(vips_cascade),
    B_THREADED: _vips_threads(0)(vips_cascade),  # 0: libvips' default, one per core
    C: ours,
    C_COPY: ours_with_copy,
}


def _time(approach: Approach, data: bytes) -> tuple[float, float, list[bytes]]:
    """Wall and CPU milliseconds (CPU counts every thread of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = approach(data)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, out


def _psnr(decoded: Image.Image, reference: Image.Image) -> float:
    a = np.asarray(decoded.convert("RGB"), dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _reference_600(data: bytes) -> Image.Image:
    """The 600 px rendition done slowly and well: full decode, one Lanczos, no encode."""
    with Image.open(io.BytesIO(data)) as original:
        image = original.convert("RGB")
    return image.resize(fit_inside(*image.size, SIZES[0]), LANCZOS)


@dataclass
class Samples:
    """Per image, the times of every round; per image, the 600 px PSNR and output bytes."""

    wall: dict[int, list[float]] = field(default_factory=dict)
    cpu: dict[int, list[float]] = field(default_factory=dict)
    psnr: list[float] = field(default_factory=list)
    out_bytes: list[int] = field(default_factory=list)

    def typical(self, clock: str) -> float:
        """The median over images of each image's best round: the cost without the noise
        of a shared machine, which only ever adds time."""
        runs = self.wall if clock == "wall" else self.cpu
        return statistics.median(min(times) for times in runs.values())


def _speed(images: list[bytes], rounds: int) -> dict[str, Samples]:
    names = list(APPROACHES)
    samples = {name: Samples() for name in names}
    for name in names:  # warm-up: plugin imports, libvips start-up
        APPROACHES[name](images[0])
    references = [_reference_600(data) for data in images]
    for round_number in range(rounds):
        for index, data in enumerate(images):
            shift = (round_number * len(images) + index) % len(names)
            for name in names[shift:] + names[:shift]:
                wall, cpu, out = _time(APPROACHES[name], data)
                found = samples[name]
                found.wall.setdefault(index, []).append(wall)
                found.cpu.setdefault(index, []).append(cpu)
                if round_number == 0:
                    with Image.open(io.BytesIO(out[0])) as largest:
                        found.psnr.append(_psnr(largest, references[index]))
                    found.out_bytes.append(sum(len(b) for b in out))
    return samples


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def _memory_probe(name: str, paths: list[Path]) -> dict[str, float]:
    """Peak resident memory while ``name`` processes ``paths``, in a process of its own.

    Linux's VmHWM, reset to the current size first (clear_refs 5): getrusage's maxrss
    would include whatever the process held before.
    """
    approach = APPROACHES[name]
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    for path in paths:
        approach(path.read_bytes())  # one original in memory at a time, as in a worker
    peak = _status_kb("VmHWM")
    return {"peak_mb": peak * 1024 / 1e6, "above_idle_mb": max(0, peak - before) * 1024 / 1e6}


def _memory_all(paths: list[Path]) -> dict[str, dict[str, float]]:
    """Runs in a fresh process that has imported everything but run nothing: each approach
    gets a fork of it, so none inherits another's heap (or libvips' threads)."""
    Image.init()  # plugin imports, paid once per process, not per task
    pyvips.version(0)
    fork = get_context("fork")
    found = {}
    for name in APPROACHES:
        with ProcessPoolExecutor(max_workers=1, mp_context=fork) as pool:
            found[name] = pool.submit(_memory_probe, name, paths).result()
    return found


def _memory(paths: list[Path]) -> dict[str, dict[str, float]]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_memory_all, paths).result()


def _encoder_table(images: list[bytes], rounds: int) -> Table:
    """The encoder's share: ours end to end per WebP method, and JPEG and AVIF beside."""
    configs = [
        (f"webp method {m}", EncodeOptions(quality=QUALITY, webp_method=m, webp_method_by_size=()))
        for m in range(7)
    ] + [
        ("webp, the thumbnailer's default per size", EncodeOptions(quality=QUALITY)),
        ("jpeg", EncodeOptions(format=OutputFormat.JPEG, quality=QUALITY)),
        *(
            (f"avif speed {s}", EncodeOptions(format=OutputFormat.AVIF, quality=60, avif_speed=s))
            for s in (6, 8, 10)
        ),
    ]
    references = [_reference_600(data) for data in images]
    found = {label: Samples() for label, _ in configs}
    for _ in range(rounds):
        for index, (data, reference) in enumerate(zip(images, references, strict=True)):
            for label, options in configs:
                wall, cpu, out = _time(lambda d, o=options: ours(d, o), data)
                found[label].wall.setdefault(index, []).append(wall)
                found[label].cpu.setdefault(index, []).append(cpu)
                if len(found[label].psnr) < len(images):
                    with Image.open(io.BytesIO(out[0])) as largest:
                        found[label].psnr.append(_psnr(largest, reference))
                    found[label].out_bytes.append(sum(len(b) for b in out))
    return Table(
        "imgflow thumbnailer by output encoder (all three sizes, end to end)",
        ["encoder", "CPU ms per image", "kB per image", "PSNR of 600 px vs reference, dB"],
        [
            [
                label,
                round(f.typical("cpu"), 1),
                round(statistics.mean(f.out_bytes) / 1000, 1),
                round(statistics.mean(f.psnr), 2),
            ]
            for label, f in found.items()
        ],
    )


# The per-size choice: libwebp effort and quality for each rendition size (issue 16).
WEBP_CHOICES = [(m, QUALITY) for m in (0, 2, 3, 4, 6)] + [(m, q) for m in (2, 4) for q in (75, 88)]


def _webp_by_size_table(images: list[bytes], rounds: int) -> Table:
    """Per rendition size and WebP (method, quality): encode CPU, bytes, and SSIM of the
    decoded WebP against the pixels it was encoded from (the encoder's loss alone)."""
    found: dict[tuple[int, int, int], tuple[list[float], list[int], list[float]]] = {}
    for data in images:
        with Image.open(io.BytesIO(data)) as original:
            original.draft("RGB", fit_inside(*original.size, SIZES[0] * 2))
            source = original.convert("RGB")
        for size in SIZES:
            pixels = source.resize(fit_inside(*source.size, size), LANCZOS)
            grey = np.asarray(pixels.convert("L"))
            for method, quality in WEBP_CHOICES:
                cpu_ms, out = [], b""
                for _ in range(rounds):
                    began = time.process_time()
                    buffer = io.BytesIO()
                    pixels.save(buffer, "WEBP", quality=quality, method=method)
                    cpu_ms.append((time.process_time() - began) * 1000)
                    out = buffer.getvalue()
                with Image.open(io.BytesIO(out)) as decoded:
                    ssim = structural_similarity(grey, np.asarray(decoded.convert("L")))
                cpus, sizes_, ssims = found.setdefault((size, method, quality), ([], [], []))
                cpus.append(min(cpu_ms))
                sizes_.append(len(out))
                ssims.append(float(ssim))
    return Table(
        "WebP per rendition size: encode CPU, bytes and SSIM (luma) against the unencoded "
        "rendition; mean over the images",
        ["size (px)", "method", "quality", "encode CPU ms", "kB", "SSIM"],
        [
            [
                size,
                method,
                quality,
                round(statistics.mean(cpus), 2),
                round(statistics.mean(sizes_) / 1000, 1),
                round(statistics.mean(ssims), 4),
            ]
            for (size, method, quality), (cpus, sizes_, ssims) in found.items()
        ],
    )


def run(quick: bool = False) -> Suite:
    count, rounds, spec = (1, 1, SMALL) if quick else (6, 5, FULL)
    paths = ensure_images(count, spec)
    images = [p.read_bytes() for p in paths]
    samples = _speed(images, rounds)
    memory = _memory(paths[:3])

    def measurement(name: str, clock: str, baseline: str | None, suffix: str = "") -> Measurement:
        found = samples[name]
        return Measurement(
            f"{name} [{clock}]{suffix}",
            found.typical(clock),
            "ms/image",
            baseline=f"{baseline} [{clock}]" if baseline else None,
            extra={
                "cpu_ms": round(found.typical("cpu"), 1),
                "wall_ms": round(found.typical("wall"), 1),
                "psnr_600_db": round(statistics.mean(found.psnr), 2),
                "kb_per_image": round(statistics.mean(found.out_bytes) / 1000, 1),
                "peak_rss_mb": round(memory[name]["peak_mb"], 1),
                "peak_above_idle_mb": round(memory[name]["above_idle_mb"], 1),
            },
        )

    vips_best = min((B_PER_SIZE, B_CASCADE), key=lambda n: samples[n].typical("cpu"))
    measurements = [
        # CPU time: what a worker child pays per image, whatever else shares the machine.
        measurement(A, "cpu", None),
        measurement(B_PER_SIZE, "cpu", A),
        measurement(B_CASCADE, "cpu", A),
        measurement(C, "cpu", A),
        measurement(C, "cpu", vips_best, ", against libvips"),
        measurement(C_COPY, "cpu", C, ", against the renditions alone"),
        # Wall time: what one upload waits; libvips may use every core here.
        measurement(A, "wall", None),
        measurement(B_THREADED, "wall", A),
        measurement(C, "wall", A),
        measurement(C, "wall", B_THREADED, ", against libvips"),
        *(
            Measurement(
                f"peak memory above idle: {name}",
                memory[name]["above_idle_mb"],
                "MB",
                baseline=f"peak memory above idle: {A}" if name != A else None,
                extra={"peak_rss_mb": round(memory[name]["peak_mb"], 1)},
            )
            for name in APPROACHES
        ),
    ]
    sizes = sorted({Image.open(io.BytesIO(d)).size for d in images})
    mb = [len(d) / 1e6 for d in images]
    notes = [
        f"{len(images)} generated JPEGs of {', '.join(f'{w}x{h}' for w, h in sizes)}, "
        f"{min(mb):.1f}-{max(mb):.1f} MB; {rounds} rounds; WebP quality {QUALITY}, "
        f"effort (method) {WEBP_METHOD} for every approach.",
        "ms/image: per image the best of the rounds, then the median over images. [cpu] is "
        "process CPU time, every thread counted: a worker child's cost per image, and "
        "steady when others load the machine; [wall] is what one upload waits.",
        "PSNR of the 600 px WebP against a full-resolution decode resized once with Lanczos "
        "and not encoded: "
        + ", ".join(
            f"{n.split(' ')[0]} {statistics.mean(samples[n].psnr):.2f} dB"
            for n in (A, B_PER_SIZE, B_CASCADE, C)
        )
        + " (the WebP encode, the same for all, accounts for most of the difference).",
        f"Peak memory: each approach alone in a fresh process over {len(paths[:3])} images, "
        "one original in memory at a time: the high-water resident size above the size "
        "before the first image (peak_rss_mb adds the interpreter, Pillow, numpy and "
        "libvips). The decision record recycles a child past 200 MB resident.",
        f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, "
        f"Pillow {Image.__version__}, {os.cpu_count()} cores.",
    ]
    return Suite(
        "Thumbnails: three WebP renditions of a 12-megapixel JPEG"
        if not quick
        else "Thumbnails (quick: small JPEGs)",
        measurements,
        notes=notes,
        tables=[
            _encoder_table(images, rounds=1 if quick else 2),
            _webp_by_size_table(images, rounds=1 if quick else 3),
        ],
    )

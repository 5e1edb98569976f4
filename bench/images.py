"""Deterministic photo-like JPEGs for the end-to-end benchmark, cached under .bench/images/.

A full 12-megapixel landscape (sky, clouds, hills, textured ground) costs seconds of numpy
work, so a small pool of such bases is made first; each image is then a different crop of
one base, mirrored or not, colour-graded, with its own textured objects and sensor grain,
which costs about as much as the JPEG encode. Every image has distinct bytes and content;
images sharing a base look like shots of one scene (as a burst from a real camera does).

The cache folder is named by the generator's version, the size and the seed, so a change
to any of them makes new files and a second run with the same ones generates nothing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

# Bump when the pixels change: the cache folder is keyed by it.
VERSION = 1
CACHE = Path(__file__).resolve().parent.parent / ".bench" / "images"
# Bases in the pool: each is shared by count / BASES images.
BASES = 25
# Crop slack: how far each image's window can move over its base, as a fraction.
SLACK = 0.06


@dataclass(frozen=True)
class ImageSpec:
    """What to generate: pixel size, and the range of encoded sizes to land in."""

    width: int
    height: int
    min_bytes: int
    max_bytes: int
    seed: int = 0

    @property
    def folder_name(self) -> str:
        return f"v{VERSION}-{self.width}x{self.height}-seed{self.seed}"


# What the brief measures: 12-megapixel JPEGs of 3-5 MB.
FULL = ImageSpec(4000, 3000, 3_000_000, 5_000_000)
# The smoke test's: the same content, small enough to generate and process in moments.
SMALL = ImageSpec(800, 600, 60_000, 400_000)


def ensure_images(
    count: int, spec: ImageSpec = FULL, cache: Path = CACHE, workers: int | None = None
) -> list[Path]:
    """Paths of images 0..count-1, generating only those not cached yet."""
    folder = cache / spec.folder_name
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{index:05d}.jpg" for index in range(count)]
    missing = [i for i, path in enumerate(paths) if not path.exists()]
    if missing:
        # One task per base, so each process builds only the bases its images use.
        by_base: dict[int, list[int]] = {}
        for index in missing:
            by_base.setdefault(index % BASES, []).append(index)
        workers = workers or os.cpu_count() or 1
        if workers == 1 or len(missing) < 4:
            for indices in by_base.values():
                _write_images(spec, folder, indices)
        else:
            with ProcessPoolExecutor(min(workers, len(by_base))) as pool:
                list(
                    pool.map(
                        _write_images,
                        [spec] * len(by_base),
                        [folder] * len(by_base),
                        by_base.values(),
                    )
                )
    return paths


def _write_images(spec: ImageSpec, folder: Path, indices: Sequence[int]) -> None:
    for index in indices:
        data = render(spec, index)
        partial = folder / f".{index:05d}.jpg.partial"
        partial.write_bytes(data)
        # Atomic: an interrupted run never leaves a truncated image that looks cached.
        os.replace(partial, folder / f"{index:05d}.jpg")


def render(spec: ImageSpec, index: int) -> bytes:
    """The JPEG bytes of image ``index``: the same for the same spec and index."""
    rng = np.random.default_rng([spec.seed, index])
    base = _base(spec, index % BASES)
    slack_x, slack_y = base.width - spec.width, base.height - spec.height
    left, top = int(rng.integers(0, slack_x + 1)), int(rng.integers(0, slack_y + 1))
    image = base.crop((left, top, left + spec.width, top + spec.height))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = image.point(_grade_lut(rng))
    _add_objects(image, base, rng)
    grain = _grain(spec)
    gx, gy = int(rng.integers(0, slack_x + 1)), int(rng.integers(0, slack_y + 1))
    # grain is centred on 128: adding it with offset -128 adds zero-mean noise, clipped.
    image = ImageChops.add(
        image, grain.crop((gx, gy, gx + spec.width, gy + spec.height)), 1.0, -128
    )
    return _encode_within(image, spec)


def _encode_within(image: Image.Image, spec: ImageSpec) -> bytes:
    """Encode at a quality that lands the file inside the spec's byte range."""
    quality = 90
    data = b""
    for _ in range(6):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        data = out.getvalue()
        if len(data) < spec.min_bytes and quality < 97:
            quality += 2
        elif len(data) > spec.max_bytes and quality > 70:
            quality -= 4
        else:
            break
    return data


def _grade_lut(rng: np.random.Generator) -> list[int]:
    """Per-channel gain and lift: a different white balance and exposure per image."""
    lut: list[int] = []
    for gain, lift in zip(rng.uniform(0.85, 1.12, 3), rng.uniform(-12, 12, 3), strict=True):
        ramp = np.clip(np.arange(256) * gain + lift, 0, 255).astype(np.uint8)
        lut.extend(int(v) for v in ramp)
    return lut


def _add_objects(image: Image.Image, base: Image.Image, rng: np.random.Generator) -> None:
    """Trees and rocks: soft-edged shapes filled with darkened texture from the base."""
    width, height = image.size
    scale = min(width, height)
    for _ in range(int(rng.integers(3, 9))):
        rx = int(scale * rng.uniform(0.02, 0.12))
        ry = int(rx * rng.uniform(0.8, 2.5))
        cx = int(rng.integers(0, width))
        cy = int(height * rng.uniform(0.45, 1.0))
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        mask = Image.new("L", (2 * rx, 2 * ry), 0)
        ImageDraw.Draw(mask).ellipse((0, 0, 2 * rx - 1, 2 * ry - 1), fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(max(1, rx // 20)))
        sx = int(rng.integers(0, base.width - 2 * rx + 1))
        # Texture from the lower half of the base: ground, not sky.
        top_max = base.height - 2 * ry
        sy = int(rng.integers(top_max // 2, top_max + 1))
        shade = float(rng.uniform(0.25, 0.6))
        texture = base.crop((sx, sy, sx + 2 * rx, sy + 2 * ry)).point(lambda v, s=shade: v * s)
        image.paste(texture, box[:2], mask)


@cache
def _grain(spec: ImageSpec) -> Image.Image:
    """Luminance sensor noise around 128, a little larger than an image (crops vary it)."""
    width, height = _base_size(spec)
    rng = np.random.default_rng([spec.seed, 1_000_003])
    noise = rng.normal(128, 7, size=(height, width)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(noise, "L").convert("RGB")


def _base_size(spec: ImageSpec) -> tuple[int, int]:
    return round(spec.width * (1 + SLACK)), round(spec.height * (1 + SLACK))


@cache
def _base(spec: ImageSpec, number: int) -> Image.Image:
    """One landscape: sky with clouds over a ragged horizon, textured ground below.

    Made at half size and upscaled: its detail is low-frequency; the grain added per image
    supplies the fine texture a camera sensor would.
    """
    full = _base_size(spec)
    width, height = full[0] // 2, full[1] // 2
    rng = np.random.default_rng([spec.seed, 7919, number])
    rows = np.arange(height, dtype=np.float32)[:, None]

    ridge = _smooth_1d(rng, width, 14) * 0.16 + _smooth_1d(rng, width, 120) * 0.03
    horizon = height * (0.36 + ridge + rng.uniform(0, 0.12))
    sky_t = np.clip(rows / horizon.max(), 0, 1)
    sky = _SKY[(sky_t * 255).astype(np.uint8)].astype(np.float32)
    sky = np.broadcast_to(sky, (height, width, 3))
    clouds = np.clip((_field(rng, width, height, (4, 16, 64, 256)) - 0.5) * 4, 0, 1)
    sky = sky + clouds[..., None] * (_CLOUD - sky)

    terrain = _field(rng, width, height, (8, 40, 200, 700))
    palette = _GROUNDS[int(rng.integers(0, len(_GROUNDS)))]
    ground = palette[np.clip((terrain - 0.2) / 0.6 * 255, 0, 255).astype(np.uint8)]
    # Haze: ground near the horizon is lighter and flatter, as distance does to a photo.
    depth = np.clip((rows - horizon[None, :]) / (height * 0.5), 0, 1)[..., None]
    ground = ground.astype(np.float32) * (0.75 + 0.25 * depth) + (1 - depth) * 40

    pixels = np.where((rows >= horizon[None, :])[..., None], ground, sky)
    small = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return small.resize(full, Image.Resampling.BICUBIC)


def _smooth_1d(rng: np.random.Generator, length: int, knots: int) -> np.ndarray:
    return np.interp(np.linspace(0, knots - 1, length), np.arange(knots), rng.random(knots))


def _field(rng: np.random.Generator, width: int, height: int, octaves: Sequence[int]) -> np.ndarray:
    """Value noise in [0, 1]: random grids of growing resolution, upscaled and summed."""
    total = np.zeros((height, width), np.float32)
    weights = [0.45, 0.3, 0.15, 0.1][: len(octaves)]
    for cells, weight in zip(octaves, weights, strict=True):
        grid = rng.random((max(2, round(cells * height / width)), cells), dtype=np.float32)
        up = Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC)
        total += weight * np.asarray(up)
    return total / sum(weights)


def _ramp(stops: Sequence[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    """A 256-entry colour lookup table through the given (position, colour) stops."""
    positions = np.array([p for p, _ in stops])
    colours = np.array([c for _, c in stops], np.float32)
    t = np.linspace(0, 1, 256)
    return np.stack([np.interp(t, positions, colours[:, c]) for c in range(3)], -1).astype(np.uint8)


_SKY = _ramp([(0, (40, 90, 170)), (0.7, (150, 190, 230)), (1, (235, 230, 215))])
_CLOUD = np.array((245, 245, 248), np.float32)
_GROUNDS = [
    _ramp([(0, (25, 35, 15)), (0.35, (70, 95, 35)), (0.6, (125, 120, 60)), (1, (200, 190, 170))]),
    _ramp([(0, (40, 30, 20)), (0.4, (120, 90, 55)), (0.7, (175, 150, 110)), (1, (225, 215, 195))]),
    _ramp([(0, (20, 30, 30)), (0.4, (50, 80, 60)), (0.7, (110, 130, 90)), (1, (190, 200, 170))]),
]

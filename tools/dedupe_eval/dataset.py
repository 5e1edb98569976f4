"""The labelled set: originals, near-duplicates of each, and hard negatives.

Each *original* starts a group; every edit of it (re-encoded, resized, cropped up to 20 %,
brightness and contrast changes, flipped, grey, a small text overlay, another format) is
in the same group, and every pair inside a group is a duplicate pair. Pairs across groups
are not. Hard negatives are built in: several originals are different parts of one scene,
and "burst" originals are the same scene with the frame moved and the light changed, as
consecutive shots are (see SPLIT_SCENES).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from tools.dedupe_eval.sources import Photo, bundled_photos


@dataclass(frozen=True)
class Sample:
    group: str  # the original this image derives from
    edit: str  # "original" or the edit applied
    data: bytes  # encoded, as a client would upload it
    scene: str  # source photograph: originals from one scene are hard negatives


def _encode(image: Image.Image, fmt: str = "JPEG", **options: int) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))


def _overlay_text(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    size = max(10, h // 20)
    draw.text((w // 30, h - 2 * size), "(c) imgflow 2026", fill="white", font_size=size)
    return out


# Near-duplicate edits: name -> function of the original giving the uploaded bytes.
EDITS: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg-q15": lambda im: _encode(im, "JPEG", quality=15),
    "half-size": lambda im: _encode(im.reduce(2), "JPEG", quality=85),
    "quarter-size-png": lambda im: _encode(im.reduce(4), "PNG"),
    "crop-10-left": lambda im: _encode(_crop(im, 0.10, 0, 1, 1), quality=90),
    "crop-20-centre": lambda im: _encode(_crop(im, 0.10, 0.10, 0.90, 0.90), quality=90),
    "crop-20-corner": lambda im: _encode(_crop(im, 0, 0, 0.80, 0.80), quality=90),
    "brighter": lambda im: _encode(ImageEnhance.Brightness(im).enhance(1.35), quality=90),
    "darker": lambda im: _encode(ImageEnhance.Brightness(im).enhance(0.65), quality=90),
    "more-contrast": lambda im: _encode(ImageEnhance.Contrast(im).enhance(1.5), quality=90),
    "less-contrast": lambda im: _encode(ImageEnhance.Contrast(im).enhance(0.6), quality=90),
    "mirrored": lambda im: _encode(ImageOps.mirror(im), quality=90),
    "grey": lambda im: _encode(ImageOps.grayscale(im), quality=90),
    "text-overlay": lambda im: _encode(_overlay_text(im), quality=90),
    "png": lambda im: _encode(im, "PNG"),
    "webp": lambda im: _encode(im, "WEBP", quality=70),
    "crop-resize-jpeg": lambda im: _encode(
        _crop(im, 0.05, 0.05, 0.95, 0.95).reduce(2), "JPEG", quality=40
    ),
}

# Scenes cut into several originals, each a group of its own: the left and right halves
# (different parts of one scene, same light and style), and for some a "burst" frame:
# the camera moved by a third of the frame and zoomed a little, the light changed. Both
# share at most about 40 % of the frame with another original, where the edits above keep
# at least 64 %: that gap is what separates another shot from an edit of the same one.
SPLIT_SCENES = {
    "skimage/astronaut.png", "skimage/coffee.png", "skimage/hubble_deep_field.jpg",
    "skimage/retina.jpg", "skimage/rocket.jpg", "sklearn/china.jpg", "sklearn/flower.jpg",
    "matplotlib/grace_hopper.jpg", "skimage/chelsea.png",
}  # fmt: skip
VIEWS = {"left": (0.0, 0.0, 0.5, 1.0), "right": (0.5, 0.0, 1.0, 1.0)}
BURST_SCENES = {"sklearn/china.jpg", "sklearn/flower.jpg", "skimage/rocket.jpg",
                "skimage/astronaut.png", "skimage/coffee.png"}  # fmt: skip


def _originals(photo: Photo) -> Iterator[tuple[str, Image.Image]]:
    if photo.name not in SPLIT_SCENES:
        yield photo.name, photo.image
        return
    for view, box in VIEWS.items():
        yield f"{photo.name}#{view}", _crop(photo.image, *box)
    if photo.name in BURST_SCENES:
        moved = _crop(photo.image, 0.30, 0.12, 0.75, 0.92)
        yield f"{photo.name}#burst", ImageEnhance.Brightness(moved).enhance(1.08)


def samples() -> Iterator[Sample]:
    for photo in bundled_photos():
        for group, original in _originals(photo):
            yield Sample(group, "original", _encode(original, quality=92), photo.name)
            for edit, apply in EDITS.items():
                yield Sample(group, edit, apply(original), photo.name)

"""The labelled set: distinct shots cut from real photographs, and edited copies of each.

Each *original* is a shot that a person would call one photo; it and its edits (see
edits.py) form a group, every pair inside a group is a duplicate pair, and pairs across
groups are not. The hard negatives are what users upload side by side:

- the left and the right half of one photograph (no overlap at all);
- a crop across the cut that overlaps each half by less than half (IoU 0.36 and 0.22);
- a burst frame: the left half's framing after the camera moved by 40 % of the frame's
  width and rolled 2 degrees, the light a little brighter, the sensor noise new (IoU
  with the left half 0.43; no edit keeps less than 0.64 of its original);
- textures photographed whole (bricks, grass, gravel), alike to any global descriptor.

Photos too texture-like to split stay whole. Every overlap is measured as IoU of the
two frames in the source photo: an edit keeps at least 0.64 of its original (the 20 %
corner crop), a distinct shot at most 0.45, so the line between them is drawn by the
labels, not by the methods measured. A burst with less motion than a 20 % crop is not in
the set: by its content it is a crop, and no pixel-based method can tell it from one.

Another shot of a scene (the stereo view of the motorcycle) is kept apart, in
``second_shots``: two shots a few centimetres apart are the same picture to most
viewers, so the report shows what each rule does with it instead of scoring it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

from tools.dedupe_eval.edits import EDITS, crop, straighten
from tools.dedupe_eval.sources import Photo, bundled_photos
from tools.dedupe_eval.sources import second_shots as stereo_views


@dataclass(frozen=True)
class Sample:
    group: str  # the original this image derives from
    edit: str  # "original" or the edit applied
    data: bytes  # encoded, as a client would upload it
    scene: str  # source photograph: the unit of the tuning/test split
    shot: str  # "whole", "left", "right", "across" or "burst"


def encode_jpeg(image: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


# Photographs cut into halves (each half a group of its own), and of those, the ones with
# a third shot across the cut, or a burst frame of the left half (never both: the two
# overlap each other by more than half).
SPLIT_SCENES = {
    "skimage/astronaut.png", "skimage/camera.png", "skimage/chelsea.png",
    "skimage/coffee.png", "skimage/coins.png", "skimage/hubble_deep_field.jpg",
    "skimage/ihc.png", "skimage/moon.png", "skimage/retina.jpg", "skimage/rocket.jpg",
    "skimage/clock_motion.png", "skimage/page.png", "sklearn/china.jpg",
    "sklearn/flower.jpg", "matplotlib/grace_hopper.jpg", "pywt/ascent", "pywt/aero",
}  # fmt: skip
ACROSS_SCENES = {
    "skimage/coffee.png", "skimage/hubble_deep_field.jpg", "skimage/retina.jpg",
    "sklearn/flower.jpg", "pywt/ascent", "skimage/coins.png",
}  # fmt: skip
BURST_SCENES = {
    "skimage/astronaut.png", "skimage/rocket.jpg", "sklearn/china.jpg",
    "matplotlib/grace_hopper.jpg", "skimage/camera.png", "pywt/aero",
}  # fmt: skip
HALVES = {"left": (0.0, 0.0, 0.5, 1.0), "right": (0.5, 0.0, 1.0, 1.0)}
ACROSS = (0.3, 0.1, 0.8, 0.9)
BURST = (0.2, 0.04, 0.7, 0.96)


def _burst_frame(photo: Photo) -> Image.Image:
    frame = straighten(crop(photo.image, *BURST), 2.0)
    frame = ImageEnhance.Brightness(frame).enhance(1.1)
    rng = np.random.default_rng(sum(photo.name.encode()))  # the same noise every run
    noisy = np.asarray(frame, np.float32) + rng.normal(0, 4, (frame.height, frame.width, 1))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def shots(photo: Photo) -> Iterator[tuple[str, Image.Image]]:
    """The distinct shots made from one photograph: (shot, image)."""
    if photo.name not in SPLIT_SCENES:
        yield "whole", photo.image
        return
    for side, box in HALVES.items():
        yield side, crop(photo.image, *box)
    if photo.name in ACROSS_SCENES:
        yield "across", crop(photo.image, *ACROSS)
    if photo.name in BURST_SCENES:
        yield "burst", _burst_frame(photo)


def group_samples(group: str, scene: str, shot: str, original: Image.Image) -> Iterator[Sample]:
    yield Sample(group, "original", encode_jpeg(original), scene, shot)
    for edit, apply in EDITS.items():
        yield Sample(group, edit, apply(original), scene, shot)


def samples() -> Iterator[Sample]:
    for photo in bundled_photos():
        for shot, original in shots(photo):
            group = photo.name if shot == "whole" else f"{photo.name}#{shot}"
            yield from group_samples(group, photo.name, shot, original)


def second_shots() -> Iterator[Sample]:
    """Other shots of a scene in the set, with their edits: reported, never scored."""
    for scene, photo in stereo_views():
        yield from group_samples(photo.name, scene, "second", photo.image)

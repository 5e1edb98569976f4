"""The labelled set: distinct shots cut from real photographs, and edited copies of each.

Each *original* is a shot that a person would call one photo; it and its edits (see
edits.py) form a group. Pairs are labelled three ways (``relation``):

- *duplicate*: the same group (one shot and its edits);
- *similar*: two groups of one scene, i.e. other pictures of the same moment: the left and
  the right half of one photograph (two frames of a pan), a crop across the cut that
  overlaps each half by less than half (IoU 0.36 and 0.22), a burst frame (the camera
  moved by 40 % of the frame and rolled 2 degrees, the light and the sensor noise
  changed: IoU with the left half 0.43), a second burst frame a moment later (the camera
  moved a little, zoomed 4 %, and the subject moved: IoU with the first about 0.8, but
  part of the picture changed), a stereo view of the same scene (the motorcycle), a
  second view of the left half a step to the side (every photo with a crop across the
  cut: shifted by 5 %, keystoned by 3 %, the subject moved by 5 % against the background,
  new light and noise; IoU with the left half about 0.9, but the content changed);
- *neither*: different scenes, including textures photographed whole (bricks, grass,
  gravel), alike to any global descriptor.

Photos too texture-like to split stay whole. Every edit keeps IoU >= 0.64 with its
original (the 20 % corner crop), every distinct shot of a scene <= 0.45 with another
unless its content changed (the second burst frame, the stereo view), so the line
between duplicate and similar is drawn by the labels, not by the methods measured.
Crops with more overlap than that are by their content copies: ``overlap_sweep`` shows
where the deduper's line falls, unscored.
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

DUPLICATE, SIMILAR, NEITHER = "duplicate", "similar", "neither"


@dataclass(frozen=True)
class Sample:
    group: str  # the original this image derives from
    edit: str  # "original" or the edit applied
    data: bytes  # encoded, as a client would upload it
    scene: str  # source photograph: the unit of the tuning/test split
    # "whole", "left", "right", "across", "left-view", "burst", "burst-later" or "second"
    shot: str


def relation(a: Sample, b: Sample) -> str:
    """The label of a pair: one picture, one scene, or neither."""
    if a.group == b.group:
        return DUPLICATE
    return SIMILAR if a.scene == b.scene else NEITHER


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
# Every photo with no burst gets the crop across the cut, so each scene's shots overlap.
ACROSS_SCENES = {
    "skimage/coffee.png", "skimage/hubble_deep_field.jpg", "skimage/retina.jpg",
    "sklearn/flower.jpg", "pywt/ascent", "skimage/coins.png", "skimage/chelsea.png",
    "skimage/ihc.png", "skimage/moon.png", "skimage/clock_motion.png", "skimage/page.png",
}  # fmt: skip
BURST_SCENES = {
    "skimage/astronaut.png", "skimage/rocket.jpg", "sklearn/china.jpg",
    "matplotlib/grace_hopper.jpg", "skimage/camera.png", "pywt/aero",
}  # fmt: skip
HALVES = {"left": (0.0, 0.0, 0.5, 1.0), "right": (0.5, 0.0, 1.0, 1.0)}
ACROSS = (0.3, 0.1, 0.8, 0.9)
BURST = (0.2, 0.04, 0.7, 0.96)
# The next frame of the burst: the camera moved by 4 % of the photo's width and zoomed in
# a little, and the subject (the middle of the frame) moved by a fifth of the frame.
BURST_LATER = (0.25, 0.06, 0.73, 0.94)
SUBJECT = (0.3, 0.2, 0.7, 0.85)  # of the frame
SUBJECT_MOVE = 0.2  # of the frame's width
# A second view a step to the side (the unseen sets' viewpoint shots, and of each across
# scene's left half here, stacks10): of the frame's width
VIEW_SHIFT, VIEW_KEYSTONE, PARALLAX = 0.05, 0.03, 0.05


def _sensor(frame: Image.Image, brightness: float, seed: str) -> Image.Image:
    frame = ImageEnhance.Brightness(frame).enhance(brightness)
    rng = np.random.default_rng(sum(seed.encode()))  # the same noise every run
    noisy = np.asarray(frame, np.float32) + rng.normal(0, 4, (frame.height, frame.width, 1))
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def _burst_frame(photo: Photo) -> Image.Image:
    return _sensor(straighten(crop(photo.image, *BURST), 2.0), 1.1, photo.name)


def _burst_later(photo: Photo) -> Image.Image:
    frame = straighten(crop(photo.image, *BURST_LATER), 1.5)
    w, h = frame.size
    box = (round(SUBJECT[0] * w), round(SUBJECT[1] * h), round(SUBJECT[2] * w),
           round(SUBJECT[3] * h))  # fmt: skip
    frame.paste(frame.crop(box), (box[0] + round(SUBJECT_MOVE * w), box[1]))
    return _sensor(frame, 1.05, photo.name + "later")


def viewpoint(image: Image.Image, seed: str) -> Image.Image:
    """Another view a step to the side: shifted, keystoned, the subject moved against the
    background, new light and noise (``seed``: the noise's)."""
    w, h = image.size
    shift = round(VIEW_SHIFT * w)
    frame = image.crop((shift, 0, w, h)).resize((w, h), Image.Resampling.BICUBIC)
    box = (round(SUBJECT[0] * w), round(SUBJECT[1] * h), round(SUBJECT[2] * w),
           round(SUBJECT[3] * h))  # fmt: skip
    frame.paste(frame.crop(box), (box[0] - round(PARALLAX * w), box[1]))
    k = VIEW_KEYSTONE * w  # the far side of the frame is shorter: a turn of the camera
    quad = (0, 0, 0, h, w, h - k, w, k)  # source corners: top-left, bottom-left, ...
    frame = frame.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)
    return _sensor(frame, 0.95, seed + "view")


def shots(photo: Photo) -> Iterator[tuple[str, Image.Image]]:
    """The distinct shots made from one photograph: (shot, image)."""
    if photo.name not in SPLIT_SCENES:
        yield "whole", photo.image
        return
    for side, box in HALVES.items():
        yield side, crop(photo.image, *box)
    if photo.name in ACROSS_SCENES:
        yield "across", crop(photo.image, *ACROSS)
        yield "left-view", viewpoint(crop(photo.image, *HALVES["left"]), photo.name + "#left")
    if photo.name in BURST_SCENES:
        yield "burst", _burst_frame(photo)
        yield "burst-later", _burst_later(photo)


def group_samples(group: str, scene: str, shot: str, original: Image.Image) -> Iterator[Sample]:
    yield Sample(group, "original", encode_jpeg(original), scene, shot)
    for edit, apply in EDITS.items():
        yield Sample(group, edit, apply(original), scene, shot)


def samples() -> Iterator[Sample]:
    for photo in bundled_photos():
        for shot, original in shots(photo):
            group = photo.name if shot == "whole" else f"{photo.name}#{shot}"
            yield from group_samples(group, photo.name, shot, original)
    yield from second_shots()


def second_shots() -> Iterator[Sample]:
    """Other shots of a scene in the set (a stereo view), with their edits: similar."""
    for scene, photo in stereo_views():
        yield from group_samples(photo.name, scene, "second", photo.image)


# Two crops of one photo, the left and the right part, sharing this much of their width.
OVERLAPS = (0.2, 0.35, 0.5, 0.65, 0.8)
SWEEP_EDITS = ("jpeg-q15", "brighter")


def overlap_sweep(scenes: set[str]) -> Iterator[tuple[float, Sample]]:
    """Pairs of crops of ``scenes``' photos at each overlap, with two edits each: where
    does duplicate end? (unscored: by content an 80 % overlap is a 20 % crop)."""
    for photo in bundled_photos():
        if photo.name not in scenes:
            continue
        for share in OVERLAPS:
            width = 1 / (2 - share)  # each crop's width, so that they share ``share`` of it
            for side, box in (("a", (0, 0, width, 1)), ("b", (1 - width, 0, 1, 1))):
                original = crop(photo.image, *box)
                group = f"{photo.name}#overlap-{share}-{side}"
                yield share, Sample(group, "original", encode_jpeg(original), group, side)
                for edit in SWEEP_EDITS:
                    yield share, Sample(group, edit, EDITS[edit](original), group, side)

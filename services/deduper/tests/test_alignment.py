"""Shots that share a strip of a frame, found without keypoints: the thumbnails aligned."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data

from imgflow_deduper import alignment
from imgflow_deduper.alignment import Alignment, align
from imgflow_deduper.overlap import features


def thumb(image: Image.Image) -> np.ndarray:
    return features(image).thumb


def soft(image: Image.Image) -> Image.Image:
    """A soft frame with sensor noise: what leaves ORB without a fit (a burst on a dull day)."""
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(3)), np.float32)
    noise = np.random.default_rng(7).normal(0, 4, blurred.shape)
    return Image.fromarray((blurred + noise).clip(0, 255).astype(np.uint8))


def crop(image: Image.Image, left: float, right: float) -> Image.Image:
    return image.crop((round(left * image.width), 0, round(right * image.width), image.height))


def test_two_shots_sharing_a_strip_align_on_it() -> None:
    photo = soft(Image.fromarray(data.astronaut()))
    # a pan: each frame 60 % of the scene's width, sharing a third of each
    found = align(thumb(crop(photo, 0.0, 0.6)), thumb(crop(photo, 0.4, 1.0)))
    assert found.agreement >= 0.8
    assert found.cells >= 6
    expected = 0.2 / 1.0  # the shared fifth of the scene, of the two frames' union
    assert math.isclose(found.iou, expected, abs_tol=0.05)


def box(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))


@pytest.mark.parametrize("fade", [alignment.FADE, 0.0])
def test_a_strip_the_frames_edges_hide_is_found_with_the_edges_faded(
    fade: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tuning split's clock, motion-blurred: its left half and a crop across the middle
    # (no ORB fit). Whitened correlation of the thumbnails as they are peaks where the
    # frames' edges meet, where no cell agrees; with the edges faded it finds the strip.
    monkeypatch.setattr(alignment, "FADE", fade)
    alignment._tukey.cache_clear()
    photo = Image.fromarray(data.clock())
    found = align(thumb(box(photo, 0.0, 0.0, 0.5, 1.0)), thumb(box(photo, 0.3, 0.1, 0.8, 0.9)))
    alignment._tukey.cache_clear()
    if fade:
        assert found.agreement >= 0.9 and found.cells >= 6
        # a partial overlap: 0.22 of the union by the crops, measured at the nearest scale
        # searched (the crops' thumbnails differ by 1.25, the search stops at 1.15)
        assert 0.1 < found.iou < 0.5
    else:  # no fading: only the plain correlation, which misses it
        assert math.isnan(found.agreement), found


def test_the_alignment_is_the_same_whichever_image_comes_first() -> None:
    photo = soft(Image.fromarray(data.astronaut()))
    a, b = thumb(crop(photo, 0.0, 0.6)), thumb(crop(photo, 0.35, 0.95))
    assert align(a, b) == align(b, a)


def test_a_copy_aligns_over_most_of_the_frame() -> None:
    photo = Image.fromarray(data.astronaut())
    found = align(thumb(photo), thumb(soft(photo.reduce(2))))
    assert found.iou > 0.9 and found.agreement > 0.9  # the rule leaves copies to keypoints


def test_photos_of_different_scenes_do_not_align() -> None:
    pictures = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    thumbs = [thumb(soft(Image.fromarray(p))) for p in pictures]
    for k, a in enumerate(thumbs):
        for b in thumbs[k + 1 :]:
            found = align(a, b)
            assert not (found.agreement >= 0.7 and found.cells >= 6), found


def test_flat_frames_give_no_alignment() -> None:
    flat = np.full((96, 128), 128, np.uint8)
    assert align(flat, flat.copy()) == Alignment()

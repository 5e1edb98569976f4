"""The geometric check on a real photo: copies keep the frame unchanged, other shots don't."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from dataclasses import astuple

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps
from skimage import data

from imgflow_deduper.decision import PairSignals, relate
from imgflow_deduper.overlap import (
    CELL_CORRELATION,
    CELL_COVER,
    CELL_TEXTURE,
    FEATURE_SIDE,
    GRID,
    KEYPOINT_POOL,
    MOTION_MIN_SIDE,
    SECOND_MAX_APART,
    SECOND_MIN_APART,
    Detector,
    Features,
    cells_agreeing,
    features,
    overlap,
)
from imgflow_deduper.settings import DedupeSettings


def photo() -> Image.Image:
    return Image.fromarray(data.astronaut())


def jpeg(image: Image.Image, quality: int = 60) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def crop(image: Image.Image, left: float, right: float) -> Image.Image:
    return image.crop((round(left * image.width), 0, round(right * image.width), image.height))


@pytest.fixture(scope="module")
def original() -> Features:
    return features(photo())


def test_an_edited_copy_covers_the_frame_unchanged(original: Features) -> None:
    copy = ImageEnhance.Brightness(jpeg(photo().reduce(2), 30)).enhance(1.3)
    found = overlap(original, features(copy))
    assert found is not None and not found.mirrored
    assert found.inliers >= 30
    assert found.iou > 0.9
    assert found.agreement > 0.9


def test_a_cropped_copy_keeps_what_it_shows(original: Features) -> None:
    found = overlap(original, features(jpeg(crop(photo(), 0.2, 1.0))))
    assert found is not None
    assert found.iou == pytest.approx(0.8, abs=0.05)
    assert found.agreement > 0.9


def test_a_mirrored_copy_matches_through_the_mirror_features(original: Features) -> None:
    found = overlap(original, features(jpeg(ImageOps.mirror(photo()))))
    assert found is not None and found.mirrored
    assert found.iou > 0.9 and found.agreement > 0.9


def test_crops_sharing_a_third_overlap_little() -> None:
    left, right = crop(photo(), 0.0, 0.6), crop(photo(), 0.4, 1.0)
    found = overlap(features(left), features(jpeg(right)))
    assert found is not None and found.inliers >= 10
    assert found.iou == pytest.approx(0.2 / 1.0, abs=0.05)  # shared 0.2 of a union of 1.0


def test_a_frame_whose_subject_moved_disagrees_where_it_moved(original: Features) -> None:
    later = jpeg(photo())
    w, h = later.size
    box = (w * 3 // 10, h // 5, w * 7 // 10, h * 17 // 20)
    later.paste(later.crop(box), (box[0] + w // 5, box[1]))
    found = overlap(original, features(later))
    assert found is not None and found.iou > 0.9
    assert found.agreement < 0.8


def _copies() -> list[Image.Image]:
    """Copies that move as one: edited, cropped, rotated."""
    return [
        # larger than MOTION_MIN_SIDE: a smaller copy's motion is not measured
        ImageEnhance.Brightness(jpeg(photo().resize((320, 320)), 30)).enhance(1.3),
        jpeg(crop(photo(), 0.2, 1.0)),
        jpeg(photo().rotate(3, resample=Image.Resampling.BICUBIC)),
    ]


def _turned(image: Image.Image, keystone: float = 0.03) -> Image.Image:
    """A step to the side: the far side of the frame shorter by ``keystone`` of its width."""
    w, h = image.size
    k = keystone * w
    quad = (0, 0, 0, h, w, h - k, w, k)  # source corners: top-left, bottom-left, ...
    return image.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)


def test_a_second_view_whose_cells_still_agree_still_moves_where_copies_do_not(
    original: Features,
) -> None:
    moved = [overlap(original, features(copy)).motion for copy in _copies()]
    view = overlap(original, features(jpeg(_turned(photo()))))
    assert view.iou > 0.9 and view.agreement > 0.9  # the agreement cannot tell it
    assert max(moved) < 2.0  # a copy's cells line up to a pixel or two of 512
    assert view.motion > 2 * max(moved)


def _stepped() -> Image.Image:
    """The subject moved by 4 % of the frame against its background (a step to the side),
    as a second view's."""
    view = jpeg(photo())
    w, h = view.size
    box = (w * 3 // 10, h // 5, w * 7 // 10, h * 17 // 20)
    view.paste(view.crop(box), (box[0] - w // 25, box[1]))
    return view


def test_a_subject_moved_a_step_moves_its_corners_on_a_second_motion(
    original: Features,
) -> None:
    # copies' left-out matches are scattered mismatches
    view = _stepped()
    found = overlap(original, features(view))
    assert found.iou > 0.9
    assert found.second_motion >= 20
    copies = [*_copies(), jpeg(photo(), 15)]
    assert max(overlap(original, features(c)).second_motion for c in copies) < 6
    assert overlap(original, features(view), motion=False).second_motion == 0  # not measured


def test_motion_is_measured_only_on_a_fit_over_most_of_both_frames() -> None:
    # crops sharing a third: no copy whatever moves, so its motion is not paid for
    found = overlap(features(crop(photo(), 0.0, 0.6)), features(crop(photo(), 0.4, 1.0)))
    assert found.iou < 0.5 and np.isnan(found.motion) and found.second_motion == 0


def _small_heavy_jpeg(side: int, image: Image.Image | None = None) -> Features:
    """``image`` (the photo) scaled down to ``side`` px and compressed hard (the issue's
    small heavy JPEG)."""
    image = photo() if image is None else image
    return features(jpeg(image.resize((side, side), Image.Resampling.BOX), 12))


@pytest.mark.parametrize("side", [MOTION_MIN_SIDE, 171])
def test_the_cells_motion_is_not_measured_on_a_copy_too_small_to_show_it(
    original: Features, side: int
) -> None:
    # its cells at the thumbnail's size are blur, their shifts noise (stacks15)
    found = overlap(original, _small_heavy_jpeg(side))
    assert found.iou > 0.9
    assert np.isnan(found.motion)
    # one pixel larger than the bar, such a copy's motion is measured
    assert not np.isnan(overlap(original, _small_heavy_jpeg(MOTION_MIN_SIDE + 1)).motion)


@pytest.mark.parametrize("side", [MOTION_MIN_SIDE, 171])
def test_a_small_view_still_moves_its_corners_on_a_second_motion(
    original: Features, side: int
) -> None:
    # the keypoints of a picture too small for the cells' motion still tell (stacks16)
    view = overlap(original, _small_heavy_jpeg(side, _stepped()))
    assert view.iou > 0.9 and np.isnan(view.motion)
    assert view.second_motion >= 20
    assert overlap(original, _small_heavy_jpeg(side)).second_motion < 6


def test_the_motion_settings_state_the_check_s_own_figures() -> None:
    # settings.py restates them in words (it does not import OpenCV's module): a change
    # to a constant must reach the description, and settings.md generated from it
    fields = DedupeSettings.model_fields
    cells = fields["dedupe_duplicate_motion"].description or ""
    second = fields["dedupe_duplicate_second_motion"].description or ""
    assert f"{MOTION_MIN_SIDE} px or smaller" in cells
    assert f"{FEATURE_SIDE}-px analysis copy" in cells
    assert f"{SECOND_MIN_APART:g}-{SECOND_MAX_APART:g} px" in second


def test_unrelated_pictures_find_no_consistent_match(original: Features) -> None:
    grass = Image.fromarray(np.asarray(data.grass())).convert("RGB")
    found = overlap(original, features(grass))
    assert found is None or found.inliers < 8


def test_the_evidence_is_the_same_whichever_image_comes_first(original: Features) -> None:
    # a burst frame: moved, rolled, re-lit; measured one way only, its agreement differed
    later = ImageEnhance.Brightness(jpeg(crop(photo(), 0.1, 0.9).rotate(2.0), 50)).enhance(1.1)
    frame = features(later)
    assert overlap(original, frame) == overlap(frame, original)


def watermarked(image: Image.Image) -> Image.Image:
    """The same stock-photo mark on any picture: a light box with a word, bottom right."""
    out = image.convert("RGB").resize((512, 512))
    draw = ImageDraw.Draw(out)
    draw.rectangle((370, 440, 500, 500), fill=(235, 235, 235))
    draw.text((380, 450), "PHOTO", fill=(20, 20, 20), font_size=36)
    return out


def foggy(image: Image.Image) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(0.1).filter(ImageFilter.GaussianBlur(2))


@pytest.mark.parametrize("weather", [lambda x: x, foggy], ids=["clear", "fog"])
def test_one_watermark_on_two_pictures_holds_few_cells(weather: Callable) -> None:
    astronaut = watermarked(weather(photo()))
    coffee = jpeg(watermarked(weather(Image.fromarray(data.coffee()))))
    found = overlap(features(astronaut), features(coffee))
    assert found.inliers >= 3 and found.iou > 0.9  # the mark fits as the identity...
    assert found.spread < 0.1  # ...on two or three of the frame's 36 cells


def test_one_watermark_on_two_photos_rich_in_corners_holds_few_of_their_corners_cells() -> None:
    astronaut = watermarked(photo())
    coffee = jpeg(watermarked(Image.fromarray(data.coffee())))
    found = overlap(features(astronaut), features(coffee))
    assert found.inliers >= 10 and found.iou > 0.9
    assert found.keypoint_spread < 0.2  # the mark's cells of the ~30 that hold keypoints
    assert found.common_keypoint_spread < 0.3  # of those with keypoints of both, still few


def test_a_flat_pictures_copy_holds_most_of_its_corners_cells() -> None:
    cells = Image.fromarray(data.cell()).convert("RGB")  # a few corners on a flat ground
    found = overlap(features(cells), features(jpeg(cells, quality=40)))
    assert found.inliers >= 10 and found.iou > 0.9
    assert found.spread < 0.1  # the plain spread reads it like an overlay...
    assert found.keypoint_spread > 0.8  # ...judged where its corners are, it is not
    assert found.common_keypoint_spread > 0.8


def test_one_watermark_on_two_foggy_pictures_holds_its_corners_cells_too() -> None:
    """The limit of both: in fog the mark is where the corners are, as a flat copy's are."""
    astronaut = watermarked(foggy(photo()))
    coffee = jpeg(watermarked(foggy(Image.fromarray(data.coffee()))))
    found = overlap(features(astronaut), features(coffee))
    assert found.spread < 0.1 and found.keypoint_spread > 0.5
    assert found.common_keypoint_spread > 0.5


def test_shared_scene_content_holds_inliers_across_the_shared_area(original: Features) -> None:
    left, right = crop(photo(), 0.0, 0.6), crop(photo(), 0.4, 1.0)
    crops = overlap(features(left), features(jpeg(right)))
    assert crops.spread > 0.4 and crops.keypoint_spread > 0.5
    copy = overlap(original, features(jpeg(watermarked(photo()))))
    assert copy.iou > 0.9 and copy.spread > 0.4 and copy.keypoint_spread > 0.8
    assert copy.common_keypoint_spread > 0.8


def _per_cell(found: Features, grid: int) -> np.ndarray:
    (w, h), points = found.size, found.direct.points
    row = np.minimum(grid - 1, (points[:, 1] * grid / h).astype(int))
    col = np.minimum(grid - 1, (points[:, 0] * grid / w).astype(int))
    return np.bincount(row * grid + col, minlength=grid * grid)


def test_a_keypoint_grid_gives_every_cell_its_share_of_the_corners_it_has() -> None:
    """ORB's own 400 crowd where the corners are strongest; on a 4 x 4 grid each cell keeps
    its strongest 25 (or all it has), and what a flat cell cannot use goes to the strongest
    left anywhere."""
    every = _per_cell(features(photo(), Detector(KEYPOINT_POOL, 0)), 4)  # all ORB finds
    share = np.minimum(every, 400 // 16)
    own = _per_cell(features(photo(), Detector(400, 0)), 4)
    gridded = _per_cell(features(photo(), Detector(400, 4)), 4)
    assert (own < share).sum() >= 4  # four cells or more starved by ORB's own pick
    assert gridded.sum() == 400 and (gridded >= share).all()
    assert gridded.max() > 400 // 16  # the flat cells' share went where the corners are


def test_a_keypoint_grid_finds_the_strip_two_crops_share() -> None:
    """Two crops of the cat sharing 30 % of their width: ORB's own 400 keypoints put too
    few on the strip to fit it (the check would find nothing in common); a grid's do."""
    cat = Image.fromarray(data.chelsea())
    width = 1 / (2 - 0.3)
    left, right = crop(cat, 0.0, width), jpeg(crop(cat, 1 - width, 1.0))
    found = {g: overlap(features(left, Detector(400, g)), features(right, Detector(400, g)))
             for g in (0, 4)}  # fmt: skip
    assert found[0].inliers < 10
    assert found[4].inliers >= 10 and found[4].iou == pytest.approx(0.18, abs=0.03)


def _pairs() -> list[tuple[Features, Features]]:
    """Copies, crops, a moved subject and look-alikes that share nothing (fits of a few
    inliers: the usual candidates of a check)."""
    lookalikes = [data.immunohistochemistry(), data.coffee(), data.chelsea(), data.rocket()]
    others = [
        jpeg(photo().reduce(2), 30),
        jpeg(crop(photo(), 0.2, 1.0)),
        jpeg(ImageOps.mirror(photo())),
        jpeg(crop(photo(), 0.4, 1.0)),
        *(Image.fromarray(np.asarray(image)).convert("RGB") for image in lookalikes),
    ]
    return [(features(crop(photo(), 0.0, 0.6)), features(other)) for other in others]


def test_a_fit_too_poor_to_judge_is_measured_no_further() -> None:
    pairs = _pairs()
    poor = 0
    for a, b in pairs:
        full, cut = overlap(a, b), overlap(a, b, min_inliers=10)
        assert (cut.inliers, cut.iou, cut.mirrored, cut.keypoints) == (
            full.inliers, full.iou, full.mirrored, full.keypoints,
        )  # fmt: skip
        if 0 < full.inliers < 10:
            poor += 1
            assert np.isnan([cut.agreement, cut.spread, cut.keypoint_spread]).all()
        else:  # NaN where the full check has NaN (no fit, nothing textured)
            np.testing.assert_equal(astuple(cut), astuple(full))
    assert poor >= 2  # the look-alikes' fits: what the shortcut is for


def test_the_worker_decides_as_the_eval_does_without_the_poor_fits_figures() -> None:
    # The eval measures everything (min_inliers 0) and sweeps thresholds; the worker stops
    # at its own floor. Their verdicts, evidence text included, must be the same.
    settings = DedupeSettings()
    geometry = settings.geometry()
    assert geometry is not None
    for a, b in _pairs():
        for cosine in (0.6, 0.85, 0.97):
            verdicts = [
                relate(
                    PairSignals(cosine=cosine, phash_distance=20, overlap=found),
                    settings.thresholds(),
                    geometry,
                )
                for found in (overlap(a, b), overlap(a, b, geometry.min_inliers))
            ]
            assert verdicts[0] == verdicts[1]


def _cells_agreeing_one_by_one(ref: np.ndarray, warped: np.ndarray, covered: np.ndarray) -> float:
    """The agreement as it was first written, a cell at a time: the reference."""
    h, w = ref.shape
    ys = np.linspace(0, h, GRID + 1).astype(int)
    xs = np.linspace(0, w, GRID + 1).astype(int)
    counted = agreeing = 0
    for y0, y1 in itertools.pairwise(ys):
        for x0, x1 in itertools.pairwise(xs):
            mask = covered[y0:y1, x0:x1]
            if mask.size == 0 or mask.mean() < CELL_COVER:
                continue
            p, q = ref[y0:y1, x0:x1][mask], warped[y0:y1, x0:x1][mask]
            if p.std() < CELL_TEXTURE or q.std() < CELL_TEXTURE:
                continue
            counted += 1
            agreeing += float(np.corrcoef(p, q)[0, 1]) >= CELL_CORRELATION
    return agreeing / counted if counted else float("nan")


def test_the_cells_agreement_is_the_one_cell_at_a_time_count() -> None:
    # Real thumbnails against shifted, noisier, flat and partly covered versions, in
    # odd sizes (cells of unequal and zero width): the vectorised count must not move.
    rng = np.random.default_rng(28)
    grey = np.asarray(photo().convert("L").resize((128, 96)), np.float64)
    cases = 0
    for h, w in ((96, 128), (37, 53), (5, 4), (128, 77)):
        ref = grey[:h, :w] if h <= 96 else np.tile(grey, (2, 1))[:h, :w]
        for noise in (0.0, 8.0, 40.0):
            warped = np.clip(np.roll(ref, 2, axis=1) + rng.normal(0, noise, ref.shape), 0, 255)
            warped = np.round(warped)
            for covered in (
                np.ones(ref.shape, bool),
                rng.random(ref.shape) < 0.93,
                np.arange(w)[None, :].repeat(h, 0) < w // 2,
            ):
                expected = _cells_agreeing_one_by_one(
                    ref.astype(np.float32), warped.astype(np.float32), covered
                )  # as the worker had them
                np.testing.assert_equal(cells_agreeing(ref, warped, covered), expected)
                cases += not np.isnan(expected)
    flat = np.full((40, 40), 128.0)
    assert np.isnan(cells_agreeing(flat, flat, np.ones((40, 40), bool)))
    assert cases >= 20

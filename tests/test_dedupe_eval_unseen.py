"""The unseen confirmation set's construction (tools.dedupe_eval.unseen), on stand-in
photos: which shots each photo gives, and how its pairs are labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tools.dedupe_eval.dataset import DUPLICATE, NEITHER, SIMILAR, relation
from tools.dedupe_eval.unseen import (
    LOMIRI,
    LONG_SIDE,
    PLASMA,
    TEXTURES,
    plan,
    samples,
    unseen_photos,
)


def _photos(folder: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("A.jpg", "B.jpg", "C.jpg", TEXTURES[0], "D.jpg"):
        pixels = rng.integers(0, 255, (600, 1600, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)


def test_each_photo_gets_its_kind_of_shots_in_name_order(tmp_path: Path) -> None:
    _photos(tmp_path)
    photos = unseen_photos(tmp_path)
    assert all(max(p.image.size) == LONG_SIDE for p in photos)  # scaled down first
    kinds = {name.removeprefix("mate/"): kind for name, kind in plan(photos).items()}
    # the texture stays whole; the others cycle across, burst, viewpoint, across
    assert kinds == {TEXTURES[0]: "whole", "A.jpg": "across", "B.jpg": "burst",
                     "C.jpg": "viewpoint", "D.jpg": "across"}  # fmt: skip
    items = samples(photos)
    shots = {s.group.removeprefix("mate/") for s in items}
    assert {"A.jpg#left", "A.jpg#right", "A.jpg#across", "B.jpg#burst", "B.jpg#burst-later",
            "C.jpg", "C.jpg#second", TEXTURES[0]} <= shots  # fmt: skip
    assert len(items) == 20 * len(shots)  # each shot with its 19 edits


def test_shots_of_one_photo_are_similar_and_other_photos_neither(tmp_path: Path) -> None:
    _photos(tmp_path)
    items = samples(unseen_photos(tmp_path))
    by = {(s.group.removeprefix("mate/"), s.edit): s for s in items}
    left, copy = by[("A.jpg#left", "original")], by[("A.jpg#left", "grey")]
    assert relation(left, copy) == DUPLICATE
    assert relation(left, by[("A.jpg#right", "original")]) == SIMILAR
    assert relation(by[("C.jpg", "original")], by[("C.jpg#second", "webp")]) == SIMILAR
    assert relation(left, by[("D.jpg#left", "original")]) == NEITHER


def test_the_fresh_plasma_set_is_planned_by_name_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for name in ("Autumn", "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour"):
        pixels = rng.integers(0, 255, (400, 640, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{name}.jpg")
    photos = unseen_photos(tmp_path, PLASMA)
    kinds = {name.removeprefix("plasma/"): kind for name, kind in plan(photos, PLASMA).items()}
    # Autumn is a painting: left out; a pattern stays whole; the others cycle
    assert kinds == {"BytheWater": "across", "ColdRipple": "burst", "ColorfulCups": "whole",
                     "DarkestHour": "viewpoint"}  # fmt: skip


def test_the_fresh_lomiri_set_is_planned_by_name_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    names = ("Bridge_by_X", "Wine_by_Y", "analogpattern_by_Peter_Nerlich", "free_by_Z",
             "umang_by_Abhishek_Mudgal", "notes")  # fmt: skip
    for name in names:
        pixels = rng.integers(0, 255, (400, 640, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{name}.jpg")
    photos = unseen_photos(tmp_path, LOMIRI)
    kinds = {name.removeprefix("lomiri/"): kind for name, kind in plan(photos, LOMIRI).items()}
    # umang is a drawn gradient: left out; the grain stays whole; capitals sort first
    assert kinds == {"Bridge_by_X.jpg": "across", "Wine_by_Y.jpg": "burst",
                     "analogpattern_by_Peter_Nerlich.jpg": "whole", "free_by_Z.jpg": "viewpoint",
                     "notes.jpg": "across"}  # fmt: skip

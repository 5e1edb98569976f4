"""`make bench`'s thumbnail suite keeps working and compares like with like.

Nothing here is timed pass/fail: the figures are checked for shape, never for speed.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from PIL import Image

from bench.images import SMALL, ensure_images
from bench.thumbnails import APPROACHES, C_COPY, SIZES, WEBP_CHOICES, C, run
from imgflow_contracts.keys import ANALYSIS_LONG_SIDE


def test_every_approach_makes_the_same_three_webp_renditions(tmp_path: Path) -> None:
    (path,) = ensure_images(1, SMALL, cache=tmp_path / "images")
    data = path.read_bytes()
    shapes = {}
    for name, approach in APPROACHES.items():
        outputs = approach(data)
        if name == C_COPY:  # the worker's task: the renditions, then the analysis copy
            *outputs, copy = outputs
            with Image.open(io.BytesIO(copy)) as image:
                assert image.format == "JPEG" and max(image.size) == ANALYSIS_LONG_SIDE
        decoded = [Image.open(io.BytesIO(out)) for out in outputs]
        assert {image.format for image in decoded} == {"WEBP"}, name
        shapes[name] = [image.size for image in decoded]
    ours = shapes[C]
    assert [max(size) for size in ours] == list(SIZES)
    for name, sizes in shapes.items():
        # libvips may round the short side the other way: one pixel at most.
        for (w, h), (ow, oh) in zip(sizes, ours, strict=True):
            assert abs(w - ow) <= 1 and abs(h - oh) <= 1, (name, sizes, ours)


def test_the_quick_suite_reports_every_figure() -> None:
    suite = run(quick=True)
    assert not suite.failed
    names = [m.name for m in suite.measurements]
    assert len(names) == len(set(names))
    for m in suite.measurements:
        assert m.value > 0 and math.isfinite(m.value), m
        if m.baseline is not None:
            assert suite.ratio(m) is not None, m
    assert any(
        m.name.startswith(C) and m.name.endswith("against libvips") for m in suite.measurements
    )
    encoders, by_size = suite.tables
    assert [row[0] for row in encoders.rows][:7] == [f"webp method {m}" for m in range(7)]
    # the per-size WebP choice: every rendition size, each with every method and quality
    assert {tuple(row[:3]) for row in by_size.rows} == {
        (size, method, quality) for size in SIZES for method, quality in WEBP_CHOICES
    }
    assert all(0 < row[5] <= 1 for row in by_size.rows)  # SSIM

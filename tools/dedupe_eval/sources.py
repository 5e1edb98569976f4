"""Real photographs that ship inside PyPI wheels, so the eval needs no download.

scikit-image bundles a few of its sample images in the wheel (the rest it fetches on
demand: those are avoided here, by reading the bundled files directly), scikit-learn
bundles two, matplotlib one and PyWavelets two more (each used when installed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

# Files inside skimage/data/ of the wheel: photographs and micrographs, not drawings.
SKIMAGE_PHOTOS = [
    "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "moon.png",
    "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "rocket.jpg", "clock_motion.png",
    "brick.png", "grass.png", "gravel.png", "page.png", "cell.png", "microaneurysms.png",
    "motorcycle_left.png",
]  # fmt: skip
# The other view of a stereo pair: the same scene shot a few centimetres to the side, the
# nearest thing to a second shot of one subject that a wheel carries. Kept apart from the
# labelled set (see dataset.SECOND_SHOTS): it is the same picture to most viewers.
SKIMAGE_SECOND_SHOTS = {"motorcycle_left.png": "motorcycle_right.png"}
SKLEARN_PHOTOS = ["china.jpg", "flower.jpg"]
MATPLOTLIB_PHOTOS = ["grace_hopper.jpg"]
# Grey photographs in PyWavelets' wheel (its "camera" is scikit-image's, so not again).
PYWT_PHOTOS = ["ascent", "aero"]


@dataclass(frozen=True)
class Photo:
    name: str
    image: Image.Image


def _open(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def bundled_photos() -> Iterator[Photo]:
    skimage_data = Path(str(resources.files("skimage") / "data"))
    for name in SKIMAGE_PHOTOS:
        yield Photo(f"skimage/{name}", _open(skimage_data / name))
    sklearn_images = Path(str(resources.files("sklearn.datasets") / "images"))
    for name in SKLEARN_PHOTOS:
        yield Photo(f"sklearn/{name}", _open(sklearn_images / name))
    try:
        mpl_data = Path(str(resources.files("matplotlib") / "mpl-data" / "sample_data"))
    except ModuleNotFoundError:
        mpl_data = Path("/nonexistent")
    for name in MATPLOTLIB_PHOTOS:
        if (mpl_data / name).exists():
            yield Photo(f"matplotlib/{name}", _open(mpl_data / name))
    try:
        import pywt.data
    except ModuleNotFoundError:
        return
    for name in PYWT_PHOTOS:
        pixels = getattr(pywt.data, name)().clip(0, 255).astype(np.uint8)
        yield Photo(f"pywt/{name}", Image.fromarray(pixels).convert("RGB"))


def second_shots() -> Iterator[tuple[str, Photo]]:
    """(the photo's name, another shot of its scene) for the photos that have one."""
    skimage_data = Path(str(resources.files("skimage") / "data"))
    for name, other in SKIMAGE_SECOND_SHOTS.items():
        yield f"skimage/{name}", Photo(f"skimage/{other}", _open(skimage_data / other))

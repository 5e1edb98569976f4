"""Real photographs that ship inside PyPI wheels, so the eval needs no download.

scikit-image bundles a few of its sample images in the wheel (the rest it fetches on
demand: those are avoided here, by reading the bundled files directly), scikit-learn
bundles two, and matplotlib one (used when installed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from PIL import Image

# Files inside skimage/data/ of the wheel: photographs and micrographs, not drawings.
SKIMAGE_PHOTOS = [
    "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "moon.png",
    "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "rocket.jpg", "clock_motion.png",
    "brick.png", "grass.png", "gravel.png", "page.png", "cell.png", "microaneurysms.png",
    "motorcycle_left.png",
]  # fmt: skip
# Left out: motorcycle_right.png, the other half of a stereo pair shot a few centimetres
# apart. It is the same picture to any viewer, so labelling it "distinct" would only
# measure a disagreement about the definition.
SKLEARN_PHOTOS = ["china.jpg", "flower.jpg"]
MATPLOTLIB_PHOTOS = ["grace_hopper.jpg"]


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
        return
    for name in MATPLOTLIB_PHOTOS:
        if (mpl_data / name).exists():
            yield Photo(f"matplotlib/{name}", _open(mpl_data / name))

"""The tuning split's hard cases: the failure modes the unseen mate set showed (stacks3),
built from the tuning split's own photos, so a rule chosen on them is confirmed elsewhere.

Every tuning photo (splits.TUNE) is one scene of four groups, each an original with edits:

- *whole*: the photo with the labelled set's edits that add marks (watermark, caption,
  letterbox) and four more overlays that are the same on every photo (a centred logo, a
  caption band, a patterned frame, a corner badge). Two photos with the same overlay are
  *neither*: the overlay is all they share.
- *soft-view*: a second viewpoint (unseen._viewpoint: shifted, keystoned, parallax) shot
  soft: blurred and scaled down, as a phone's close-up. *Similar* to the whole, never a copy.
- *fog-left*, *fog-right*: the photo's halves in fog (a tenth of the contrast, blurred):
  few keypoints. *Similar* to each other and to the whole, not copies.

Labels by construction (dataset.relation: group, then scene).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from tools.dedupe_eval.dataset import HALVES, Sample, encode_jpeg
from tools.dedupe_eval.edits import EDITS, crop, encode
from tools.dedupe_eval.sources import Photo, bundled_photos
from tools.dedupe_eval.splits import TUNE, split_of
from tools.dedupe_eval.unseen import _viewpoint

FOG_CONTRAST, FOG_BLUR = 0.1, 2.0
SOFT_BLUR, SOFT_REDUCE = 3.0, 2


def _logo(image: Image.Image) -> Image.Image:
    """A studio's logo in the middle: a ring and a word, half opaque."""
    out = image.convert("RGBA")
    w, h = out.size
    mark = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(mark)
    r = min(w, h) // 5
    draw.ellipse((w // 2 - r, h // 2 - r, w // 2 + r, h // 2 + r), outline=(255, 255, 255, 140),
                 width=max(3, r // 8))  # fmt: skip
    draw.text((w // 2 - r // 2, h // 2 - r // 6), "STUDIO", fill=(255, 255, 255, 160),
              font_size=max(10, r // 3))  # fmt: skip
    return Image.alpha_composite(out, mark).convert("RGB")


def _band(image: Image.Image) -> Image.Image:
    """A caption band across the bottom: a dark bar and a line of text."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.rectangle((0, round(h * 0.86), w, h), fill=(15, 15, 15))
    draw.text((w // 20, round(h * 0.89)), "Summer holiday 2026 - imgflow", fill="white",
              font_size=max(10, h // 18))  # fmt: skip
    return out


def _frame(image: Image.Image) -> Image.Image:
    """A patterned frame: a chequered border a twelfth of the short side wide."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    step = max(4, min(w, h) // 24)
    for x in range(0, w, step):
        for y in range(0, h, step):
            if (x < 2 * step or y < 2 * step or x >= w - 2 * step or y >= h - 2 * step) and (
                (x // step + y // step) % 2 == 0
            ):
                draw.rectangle((x, y, x + step - 1, y + step - 1), fill=(200, 170, 60))
    return out


def _badge(image: Image.Image) -> Image.Image:
    """A badge in the top-left corner: a filled square with a word, fully opaque."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    side = min(w, h) // 6
    draw.rectangle((side // 4, side // 4, side // 4 + side, side // 4 + side), fill=(180, 20, 20))
    draw.text((side // 3, side // 2), "NEW", fill="white", font_size=max(8, side // 3))
    return out


OVERLAYS: dict[str, Callable[[Image.Image], bytes]] = {
    "watermark": EDITS["watermark"],
    "text-overlay": EDITS["text-overlay"],
    "letterbox": EDITS["letterbox"],
    "logo": lambda im: encode(_logo(im), quality=90),
    "caption-band": lambda im: encode(_band(im), quality=90),
    "frame": lambda im: encode(_frame(im), quality=90),
    "badge": lambda im: encode(_badge(im), quality=90),
}
OTHER_EDITS = ("jpeg-q15", "brighter", "watermark", "crop-20-corner")


def _soft_view(photo: Photo) -> Image.Image:
    view = _viewpoint(photo).filter(ImageFilter.GaussianBlur(SOFT_BLUR))
    return view.reduce(SOFT_REDUCE)


def _fog(image: Image.Image) -> Image.Image:
    grey = ImageEnhance.Contrast(image).enhance(FOG_CONTRAST)
    return ImageEnhance.Brightness(grey).enhance(1.2).filter(ImageFilter.GaussianBlur(FOG_BLUR))


def _group(group: str, scene: str, shot: str, original: Image.Image,
           edits: dict[str, Callable[[Image.Image], bytes]]) -> Iterator[Sample]:  # fmt: skip
    yield Sample(group, "original", encode_jpeg(original), scene, shot)
    for edit, apply in edits.items():
        yield Sample(group, edit, apply(original), scene, shot)


def tuning_photos() -> list[Photo]:
    photos = list(bundled_photos())
    of = split_of([p.name for p in photos])
    return [p for p in photos if of[p.name] == TUNE]


def samples(photos: list[Photo] | None = None) -> list[Sample]:
    out: list[Sample] = []
    others = {e: EDITS[e] for e in OTHER_EDITS}
    for photo in photos if photos is not None else tuning_photos():
        scene = f"hard/{photo.name}"
        out.extend(_group(scene, scene, "whole", photo.image, OVERLAYS))
        out.extend(_group(f"{scene}#soft-view", scene, "second", _soft_view(photo), others))
        fogged = _fog(photo.image)
        for side, box in HALVES.items():
            out.extend(_group(f"{scene}#fog-{side}", scene, side, crop(fogged, *box), others))
    return out

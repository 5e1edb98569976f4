"""Renditions from an original: decode once, at the least scale, then cascade down.

The order of the steps is the speed: a JPEG is decoded with DCT scaling (``draft``) to
the smallest scale that still covers the largest rendition, so the inverse DCT runs on a
sixteenth of a 12-megapixel photo's pixels; that is resized once to the largest
rendition, and only then colour-converted and turned upright, on few pixels; each smaller
rendition is resized from the one before it, never from the original. The same decode
also gives the analysis copy (``render_with_analysis``) that the hasher and the deduper
read instead of decoding the original again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from imgflow_runtime.imaging import (
    UndecodableImage,
    decode_errors,
    open_image,
    stored_size,
    upright,
)
from imgflow_thumbnailer.colour import to_resizable, to_srgb
from imgflow_thumbnailer.decoding import load_scaled
from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat, encode
from imgflow_thumbnailer.geometry import Fit, crop_box, target_size

__all__ = ["Rendered", "Rendition", "UndecodableImage", "render_renditions", "render_with_analysis"]

_LANCZOS = Image.Resampling.LANCZOS
# Past this ratio a resize first box-reduces by a whole factor: Pillow's documented point
# where the result is indistinguishable from a full Lanczos, for a fraction of the work
# (matters for PNG, WebP and the like, which decode at full size).
_REDUCING_GAP = 3.0


@dataclass(frozen=True)
class Rendition:
    size: int
    width: int
    height: int
    format: OutputFormat
    data: bytes

    @property
    def content_type(self) -> str:
        return self.format.content_type


@dataclass(frozen=True)
class Rendered:
    renditions: list[Rendition]  # largest first
    # JPEG of the whole frame, upright and sRGB, long side at most the asked size: what
    # the hasher and the deduper decode instead of the original (keys.analysis_key).
    analysis: bytes | None


# Near-lossless at this size: what the analysis sees is the pixels, not JPEG artefacts.
ANALYSIS_ENCODING = EncodeOptions(format=OutputFormat.JPEG, quality=90)


def render_with_analysis(
    data: bytes,
    sizes: Sequence[int],
    *,
    fit: Fit = Fit.INSIDE,
    options: EncodeOptions | None = None,
    analysis_side: int | None = None,
) -> Rendered:
    """The renditions, and the analysis copy when ``analysis_side`` is given, from one
    decode. Raises ``UndecodableImage``."""
    options = options or EncodeOptions()
    if not sizes and not analysis_side:
        return Rendered([], None)
    largest_size = max(sizes, default=0)

    def wanted(width: int, height: int) -> tuple[int, int]:
        rendition = target_size(width, height, largest_size, fit)
        if not analysis_side:
            return rendition
        whole = target_size(width, height, analysis_side, Fit.INSIDE)
        return max(rendition[0], whole[0]), max(rendition[1], whole[1])

    # Decoding and every step after it are deterministic: what fails fails again, so any
    # error of theirs is the image's (UndecodableImage, final on the first attempt).
    with decode_errors(), open_image(data) as original:
        loaded = load_scaled(original, wanted)
        shown, turn = loaded.displayed, loaded.orientation
        icc_profile = original.info.get("icc_profile")
        resizable = to_resizable(original)
        largest = target_size(*shown, largest_size, fit)
        current = _reduce(resizable, stored_size(largest, turn), fit) if sizes else None
        copy_size = target_size(*shown, analysis_side, Fit.INSIDE) if analysis_side else None
        # From the largest rendition when it is the whole frame and at least as big: a
        # small resize of few pixels, where the decoded original costs ~10 ms more.
        copy_from_largest = (
            copy_size is not None
            and current is not None
            and fit is Fit.INSIDE
            and copy_size[0] <= largest[0]
            and copy_size[1] <= largest[1]
        )
        whole = (
            _reduce(resizable, stored_size(copy_size, turn), Fit.INSIDE)
            if copy_size is not None and not copy_from_largest
            else None
        )

    with decode_errors():  # colour conversion and encoding are deterministic too
        analysis = None
        if whole is not None:
            analysis = encode(upright(to_srgb(whole, icc_profile), turn), ANALYSIS_ENCODING)
        renditions = []
        if current is not None:
            current = upright(to_srgb(current, icc_profile), turn)
            if copy_from_largest and copy_size is not None:
                analysis = encode(current.resize(copy_size, _LANCZOS), ANALYSIS_ENCODING)
            for size in sorted(set(sizes), reverse=True):
                width, height = target_size(*shown, size, fit)
                if current.size != (width, height):
                    current = current.resize((width, height), _LANCZOS)
                renditions.append(
                    Rendition(
                        size, width, height, options.format, encode(current, options.for_size(size))
                    )
                )
        return Rendered(renditions, analysis)


def render_renditions(
    data: bytes,
    sizes: Sequence[int],
    *,
    fit: Fit = Fit.INSIDE,
    options: EncodeOptions | None = None,
) -> list[Rendition]:
    """One rendition per size, largest first. Raises ``UndecodableImage``."""
    return render_with_analysis(data, sizes, fit=fit, options=options).renditions


def _reduce(image: Image.Image, size: tuple[int, int], fit: Fit) -> Image.Image:
    """The decoded image at the largest rendition's size (stored axes), cropped if covering.

    Always a new image: the original is closed, and with it its pixels, when this returns.
    """
    box = crop_box(*image.size, fit)
    if image.size == size and box == (0, 0, *image.size):
        return image.copy()
    return image.resize(size, _LANCZOS, box=box, reducing_gap=_REDUCING_GAP)

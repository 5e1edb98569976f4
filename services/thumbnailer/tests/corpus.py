"""A corpus of real-world image shapes, made by the tests: every mode, profile, orientation.

Each maker returns encoded bytes. Colours are chosen so a wrong conversion is far from the
right one (a 16-bit grey read as 8-bit turns white; P3 read as sRGB loses 53 of red).
"""

from __future__ import annotations

import io
from functools import cache
from typing import Any

import pillow_heif
import pyvips
from PIL import Image, ImageCms, ImageOps

pillow_heif.register_heif_opener()

ORIENTATION = 0x0112
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
GREY = (128, 128, 128)
CORNERS = {"top-left": RED, "top-right": GREEN, "bottom-left": BLUE, "bottom-right": WHITE}


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def marked(width: int, height: int) -> Image.Image:
    """Grey, with a coloured block in each corner (a quarter of each side): orientation
    shows in where the colours end up."""
    image = Image.new("RGB", (width, height), GREY)
    bw, bh = width // 4, height // 4
    image.paste(RED, (0, 0, bw, bh))
    image.paste(GREEN, (width - bw, 0, width, bh))
    image.paste(BLUE, (0, height - bh, bw, height))
    image.paste(WHITE, (width - bw, height - bh, width, height))
    return image


def with_orientation(image: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    """``image`` stored as it is, tagged to be shown turned by ``orientation``."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    # As bytes: pillow-heif turns an orientation it finds in them into HEIF's own rotation.
    return encode(image, fmt, exif=exif.tobytes(), quality=92)


def displayed(image: Image.Image, orientation: int) -> Image.Image:
    """What a viewer shows: Pillow's own exif_transpose is the oracle."""
    tagged = image.copy()
    tagged.getexif()[ORIENTATION] = orientation
    return ImageOps.exif_transpose(tagged)


def halves(size: tuple[int, int], left: tuple[int, ...], right: tuple[int, ...], mode: str):
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def animated(fmt: str, colours: list[tuple[int, int, int]]) -> bytes:
    frames = [Image.new("RGB", (120, 80), c) for c in colours]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def grey16_png(level16: int, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(Image.new("I;16", size, level16), "PNG")


def rgb16_png(colour16: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """48-bit PNG: Pillow cannot write one, libvips can."""
    flat = pyvips.Image.black(*size, bands=3) + list(colour16)
    return flat.cast("ushort").copy(interpretation="rgb16").pngsave_buffer()


@cache
def profile(name: str) -> bytes:
    """libvips' built-in ICC profiles: ``p3`` (Display P3) and ``cmyk`` (a print profile)."""
    pixel = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb")
    return pixel.icc_export(output_profile=name).get("icc-profile-data")


def tagged_p3(p3_colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """A JPEG whose pixel values are Display P3, as an iPhone writes them."""
    return encode(Image.new("RGB", size, p3_colour), "JPEG", quality=95, icc_profile=profile("p3"))


def cmyk_with_profile(srgb_colour: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    """sRGB colour separated to CMYK through a print profile, which is embedded."""
    source = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    target = ImageCms.ImageCmsProfile(io.BytesIO(profile("cmyk")))
    cmyk = ImageCms.profileToProfile(
        Image.new("RGB", (64, 48), srgb_colour),
        source,
        target,
        outputMode="CMYK",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    return encode(cmyk, fmt, icc_profile=profile("cmyk"), quality=95)


def with_private_metadata(fmt: str = "JPEG") -> bytes:
    """Camera, serial, GPS, a comment, XMP and an ICC profile: none may reach a rendition."""
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0xA431] = "SERIAL-0451"  # BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 22.0, 1.0)
    gps[3], gps[4] = "E", (4.0, 53.0, 2.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>secret-xmp</rdf:RDF></x:xmpmeta>'
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = marked(400, 300)
    extra: dict[str, Any] = {"comment": b"secret-comment"} if fmt == "JPEG" else {}
    return encode(image, fmt, exif=exif, xmp=xmp, icc_profile=srgb, quality=90, **extra)


PRIVATE_STRINGS = [b"SecretCam", b"SERIAL-0451", b"secret-comment", b"secret-xmp"]

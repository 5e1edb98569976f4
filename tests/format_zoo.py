"""The format zoo: images of every shape people upload, made here by the tests themselves
(no file anyone else made): every mode in every container Pillow writes it to, and by
hand where it does not; animations, pages, MPO, CMYK and YCCK JPEG, ICC profiles, EXIF
orientations, trailers after the end, metadata and pixel bombs, and truncated copies.

``pillow_view`` is the oracle: what Pillow itself makes of a file (None when it refuses
it), as 8-bit sRGB on white, for comparing renditions with.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pyvips
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from services.thumbnailer.tests.corpus import ORIENTATION, encode, halves, marked

SIZE = (128, 96)
WARM, COOL = (200, 80, 60), (60, 80, 200)
DARK, LIGHT = 60, 200  # 8-bit grey levels
CONTAINERS = ("PNG", "TIFF", "WEBP", "GIF", "JPEG")


def _deep_grey(mode: str) -> bool:
    return mode in ("I", "F") or mode.startswith("I;16")


def _grey(mode: str, scale: float) -> Image.Image:
    """DARK | LIGHT in a deep grey mode, as ``scale`` times the 8-bit level."""
    return halves(SIZE, round(DARK * scale), round(LIGHT * scale), mode)


def _premultiplied(mode: str) -> Image.Image:
    return halves(SIZE, (*WARM, 255)[: len(mode)], (*COOL, 255)[: len(mode)], mode)


# name: (image, expected left, expected right); greys are expected as (v, v, v).
MODES: dict[str, tuple[Image.Image, tuple[int, ...], tuple[int, ...]]] = {
    "1": (halves(SIZE, 0, 1, "1"), (0,) * 3, (255,) * 3),
    "L": (halves(SIZE, DARK, LIGHT, "L"), (DARK,) * 3, (LIGHT,) * 3),
    "LA": (halves(SIZE, (DARK, 255), (LIGHT, 255), "LA"), (DARK,) * 3, (LIGHT,) * 3),
    "P": (halves(SIZE, WARM, COOL, "RGB").quantize(4), WARM, COOL),
    "PA": (halves(SIZE, WARM, COOL, "RGB").quantize(4).convert("PA"), WARM, COOL),
    "I": (_grey("I", 257), (DARK,) * 3, (LIGHT,) * 3),
    "I;16": (_grey("I;16", 257), (DARK,) * 3, (LIGHT,) * 3),
    "I;16B": (_grey("I;16B", 257), (DARK,) * 3, (LIGHT,) * 3),
    "I;16L": (_grey("I;16L", 257), (DARK,) * 3, (LIGHT,) * 3),
    "I;16N": (_grey("I;16N", 257), (DARK,) * 3, (LIGHT,) * 3),
    "F": (halves(SIZE, DARK / 255, LIGHT / 255, "F"), (DARK,) * 3, (LIGHT,) * 3),
    "RGB": (halves(SIZE, WARM, COOL, "RGB"), WARM, COOL),
    "RGBA": (halves(SIZE, (*WARM, 255), (*COOL, 255), "RGBA"), WARM, COOL),
    "RGBa": (halves(SIZE, (*WARM, 255), (*COOL, 255), "RGBA").convert("RGBa"), WARM, COOL),
    "RGBX": (halves(SIZE, WARM, COOL, "RGB").convert("RGBX"), WARM, COOL),
    "CMYK": (halves(SIZE, WARM, COOL, "RGB").convert("CMYK"), WARM, COOL),
    "YCbCr": (halves(SIZE, WARM, COOL, "RGB").convert("YCbCr"), WARM, COOL),
    "LAB": (halves(SIZE, WARM, COOL, "RGB").convert("LAB"), WARM, COOL),
    "HSV": (halves(SIZE, WARM, COOL, "RGB").convert("HSV"), WARM, COOL),
}


def _written(image: Image.Image, container: str) -> bytes | None:
    """``image`` in ``container``, or None where Pillow does not write that mode there."""
    try:
        options = {"quality": 95} if container == "JPEG" else {}
        if container == "WEBP":
            options = {"lossless": True}
        return encode(image, container, **options)
    except (OSError, ValueError, KeyError):
        return None


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def deep_png(channels: int, left: tuple[int, ...], right: tuple[int, ...]) -> bytes:
    """A 16-bit-per-channel PNG (48-bit RGB, 64-bit RGBA), written by hand: Pillow cannot."""
    width, height = SIZE
    colour_type = {3: 2, 4: 6}[channels]
    row = b"".join(
        struct.pack(f">{channels}H", *(v * 257 for v in (left if x < width // 2 else right)))
        for x in range(width)
    )
    raw = b"".join(b"\x00" + row for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def tiff_by_hand(
    photometric: int, bits: int, left: tuple[int, ...], right: tuple[int, ...], extra: int = -1
) -> bytes:
    """A little-endian, one-strip TIFF of any sample depth and alpha kind (``extra``: 1
    associated, 2 unassociated): the layouts Pillow reads but does not write."""
    width, height = SIZE
    channels, code = len(left), {8: "B", 16: "H"}[bits]
    row = b"".join(
        struct.pack(f"<{channels}{code}", *(left if x < width // 2 else right))
        for x in range(width)
    )
    pixels = row * height
    entries = [
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, channels, None),  # BitsPerSample, stored after the directory
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, photometric),
        (273, 4, 1, None),  # StripOffsets
        (277, 3, 1, channels),
        (278, 3, 1, height),
        (279, 4, 1, len(pixels)),
    ] + ([(338, 3, 1, extra)] if extra >= 0 else [])
    bits_at = 8 + 2 + 12 * len(entries) + 4
    pixels_at = bits_at + 2 * channels
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        if tag == 258:
            value = bits_at if channels > 2 else bits | (bits << 16 if channels == 2 else 0)
        if tag == 273:
            value = pixels_at
        packed = (
            struct.pack("<HH", value & 0xFFFF, value >> 16)
            if kind == 3
            else struct.pack("<I", value)
        )
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0) + struct.pack(f"<{channels}H", *[bits] * channels) + pixels
    return bytes(out)


def _deep(colour: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(v * 257 for v in colour)


def transparent_key_png(mode: str) -> bytes:
    """L or RGB with a tRNS colour key on the right half: it shows white on a JPEG."""
    left, right = (DARK, LIGHT) if mode == "L" else (WARM, COOL)
    return encode(halves(SIZE, left, right, mode), "PNG", transparency=right)


SPECIMENS = {
    f"{mode}-{container.lower()}": (data, left, right)
    for mode, (image, left, right) in MODES.items()
    for container in CONTAINERS
    # Pillow writes a deep grey to 8-bit containers by clipping it: not a deep file.
    if not (_deep_grey(image.mode) and container not in ("PNG", "TIFF"))
    and (data := _written(image, container)) is not None
}
SPECIMENS |= {
    "rgb48-png": (deep_png(3, WARM, COOL), WARM, COOL),
    "rgba64-png": (deep_png(4, (*WARM, 255), (*COOL, 255)), WARM, COOL),
    "rgb48-tiff": (tiff_by_hand(2, 16, _deep(WARM), _deep(COOL)), WARM, COOL),
    "rgba64-tiff": (tiff_by_hand(2, 16, _deep((*WARM, 255)), _deep((*COOL, 255)), 2), WARM, COOL),
    # Associated (premultiplied) alpha: Pillow reads these as La, and RGBA via RGBa.
    "La-tiff": (tiff_by_hand(1, 8, (DARK, 255), (LIGHT, 255), 1), (DARK,) * 3, (LIGHT,) * 3),
    "RGBa-tiff": (tiff_by_hand(2, 8, (*WARM, 255), (*COOL, 255), 1), WARM, COOL),
}
# Lossy or palette containers round a colour a little; a scaling bug is off by 100+.
TOLERANCE = 12


# --- the rest of the zoo ---------------------------------------------------------------

FRAMES = [(220, 40, 40), (40, 200, 60), (50, 70, 220)]  # frame 0 is the one that renders
# Something like a motion photo's video: an MP4's first box and more.
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(range(256)) * 64


def frames(fmt: str, **options: Any) -> bytes:
    images = [Image.new("RGB", SIZE, colour) for colour in FRAMES]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], **options)


def marked_jpeg(orientation: int) -> bytes:
    """Corners of four colours, tagged with an EXIF orientation: a wrong turn shows."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return encode(marked(*SIZE), "JPEG", exif=exif.tobytes(), quality=92)


def without_adobe_marker(jpeg: bytes) -> bytes:
    """The JPEG with its APP14 "Adobe" segment cut out."""
    at = jpeg.index(b"\xff\xee")
    (length,) = struct.unpack(">H", jpeg[at + 2 : at + 4])
    return jpeg[:at] + jpeg[at + 2 + length :]


def ycck_jpeg(cmyk: tuple[int, int, int, int]) -> bytes:
    """A YCCK JPEG (Adobe transform 2, as Photoshop writes CMYK): libjpeg turns its Y, Cb
    and Cr back into inverted C, M and Y. Pillow writes CMYK inverted and untransformed,
    so the samples are made here and the Adobe transform flag set by hand."""
    c, m, y, k = cmyk
    ycc = Image.new("RGB", SIZE, (c, m, y)).convert("YCbCr")
    channels = [ch.point(lambda v: 255 - v) for ch in ycc.split()]
    samples = Image.merge("CMYK", [*channels, Image.new("L", SIZE, k)])
    data = bytearray(encode(samples, "JPEG", quality=95))
    at = data.index(b"Adobe")
    data[at + 11] = 2  # transform: YCCK
    return bytes(data)


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def adobe_rgb_profile() -> bytes:
    """An ICC v2 matrix/TRC profile with Adobe RGB (1998)'s primaries (D50-adapted) and
    its 563/256 gamma, built by hand: Pillow's ImageCms makes only sRGB and LAB."""

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \x00\x00\x00\x00" + _s15f16(x) + _s15f16(y) + _s15f16(z)

    name = b"Adobe RGB (1998) compatible, made by imgflow's tests\x00"
    desc = b"desc\x00\x00\x00\x00" + struct.pack(">I", len(name)) + name + bytes(4 + 4 + 3 + 67)
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 563) + b"\x00\x00"
    tags = [
        (b"desc", desc),
        (b"cprt", b"text\x00\x00\x00\x00public domain\x00\x00\x00"),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)),
        (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)),
        (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"none"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 12, 5, 0, 0, 0)
        + b"acsp"
        + bytes(24)  # platform, flags, manufacturer, model
        + bytes(8)  # attributes
        + struct.pack(">I", 0)  # perceptual intent
        + _s15f16(0.9642)
        + _s15f16(1.0)
        + _s15f16(0.8249)
        + b"none"
    )
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def p3_profile() -> bytes:
    """libvips' built-in Display P3 profile."""
    pixel = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb")
    return pixel.icc_export(output_profile="p3").get("icc-profile-data")


def with_profile(profile: bytes, fmt: str = "JPEG") -> bytes:
    image = halves(SIZE, (180, 90, 40), (40, 160, 90), "RGB")
    return encode(image, fmt, icc_profile=profile, **({"quality": 95} if fmt == "JPEG" else {}))


def _png_chunk_before(png: bytes, anchor: bytes, chunk: bytes) -> bytes:
    at = png.index(anchor) - 4
    return png[:at] + chunk + png[at:]


def _compressed_bomb() -> bytes:
    """Compresses to a few kB; inflates past Pillow's limit on a text or ICC chunk."""
    return zlib.compress(b"\x00" * (PngImagePlugin.MAX_TEXT_CHUNK * 4), 9)


def text_bomb(before_pixels: bool) -> bytes:
    """A zTXt chunk that inflates past the limit: before IDAT Pillow meets it opening the
    file (the door), after IDAT only when loading the pixels (the workers)."""
    png = encode(halves(SIZE, WARM, COOL, "RGB"), "PNG")
    chunk = _chunk(b"zTXt", b"Comment\x00\x00" + _compressed_bomb())
    return _png_chunk_before(png, b"IDAT" if before_pixels else b"IEND", chunk)


def icc_bomb() -> bytes:
    png = encode(halves(SIZE, WARM, COOL, "RGB"), "PNG")
    return _png_chunk_before(png, b"IDAT", _chunk(b"iCCP", b"bomb\x00\x00" + _compressed_bomb()))


def pixel_bomb() -> bytes:
    """A PNG header claiming 30000 x 30000 pixels, in a few dozen bytes."""
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = _chunk(b"IDAT", zlib.compress(b"\x00" * 100))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + idat + _chunk(b"IEND", b"")


def broken_pixels() -> bytes:
    """A PNG whose compressed pixel data is garbage, framed correctly: it passes the door
    (the header is sound, IEND is there) and fails decoding, every time."""
    png = encode(halves(SIZE, WARM, COOL, "RGB"), "PNG")
    at = png.index(b"IDAT") - 4  # the chunk's length field
    (length,) = struct.unpack(">I", png[at : at + 4])
    garbage = bytes((i * 37 + 11) % 256 for i in range(length))
    return png[:at] + _chunk(b"IDAT", garbage) + png[at + 12 + length :]


BOMBS = {
    "text-bomb-before-pixels": text_bomb(before_pixels=True),
    "text-bomb-after-pixels": text_bomb(before_pixels=False),
    "icc-bomb": icc_bomb(),
    "pixel-bomb": pixel_bomb(),
}


def extras() -> dict[str, bytes]:
    """The zoo beyond the mode matrix."""
    cmyk = encode(Image.new("CMYK", SIZE, (20, 160, 200, 30)), "JPEG", quality=95)
    mpo_frames = [Image.new("RGB", SIZE, colour) for colour in FRAMES[:2]]
    found = {
        "animated-gif": frames("GIF", duration=80, loop=0),
        "animated-webp": frames("WEBP", duration=80, loop=0, lossless=True),
        "animated-png": frames("PNG", duration=80, loop=0),
        "multi-page-tiff": frames("TIFF"),
        "mpo": encode(mpo_frames[0], "MPO", save_all=True, append_images=mpo_frames[1:]),
        "cmyk-jpeg-adobe": cmyk,
        "cmyk-jpeg-no-adobe": without_adobe_marker(cmyk),
        "ycck-jpeg": ycck_jpeg((20, 160, 200, 30)),
        "p-trns-png": encode(halves(SIZE, WARM, COOL, "RGB").quantize(4), "PNG", transparency=0),
        "l-trns-png": transparent_key_png("L"),
        "rgb-trns-png": transparent_key_png("RGB"),
        "display-p3-jpeg": with_profile(p3_profile()),
        "adobe-rgb-jpeg": with_profile(adobe_rgb_profile()),
        "adobe-rgb-png": with_profile(adobe_rgb_profile(), "PNG"),
        "broken-profile-jpeg": with_profile(b"not an ICC profile at all" * 8),
        "heif": encode(halves(SIZE, WARM, COOL, "RGB"), "HEIF", quality=90),
        "avif": encode(halves(SIZE, WARM, COOL, "RGB"), "AVIF", quality=90),
        "broken-pixels-png": broken_pixels(),
    }
    found |= {f"exif-orientation-{n}": marked_jpeg(n) for n in range(1, 9)}
    jpeg = SPECIMENS["RGB-jpeg"][0]
    found |= {
        "motion-photo-jpeg": jpeg + MP4,
        "png-newline-after-iend": SPECIMENS["RGB-png"][0] + b"\n",
        "gif-junk-after-trailer": SPECIMENS["RGB-gif"][0] + b"junk" * 10,
        "webp-junk-after-riff": SPECIMENS["RGB-webp"][0] + b"\x00junk",
        "tiff-junk-after-strips": SPECIMENS["RGB-tiff"][0] + b"junk" * 10,
        "mpo-with-video": found["mpo"] + MP4,
    }
    return found


def zoo() -> dict[str, bytes]:
    """Every specimen, each with a truncated copy (two thirds of its bytes) beside it."""
    whole = {name: data for name, (data, _, _) in SPECIMENS.items()} | extras()
    cut = {f"{name}-truncated": data[: len(data) * 2 // 3] for name, data in whole.items()}
    return whole | cut | BOMBS


# --- the oracle ------------------------------------------------------------------------

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def pillow_view(data: bytes) -> Image.Image | None:
    """What Pillow itself makes of ``data``: its first frame, turned as EXIF says, in 8-bit
    sRGB on white; None when Pillow refuses the file, or any frame or page of it (a file
    Pillow cannot fully load is cut short or corrupt, whichever frame shows it)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            profile = image.info.get("icc_profile")
            shown = _on_white(_srgb(_eight_bit(ImageOps.exif_transpose(image)), profile))
            for frame in range(1, getattr(image, "n_frames", 1)):
                image.seek(frame)
                image.load()
            return shown
    except Exception:  # any refusal is Pillow's verdict
        return None


def _eight_bit(image: Image.Image) -> Image.Image:
    """Deep greys scaled by their depth with numpy, independently of the workers' code."""
    if not _deep_grey(image.mode):
        if image.mode in ("La", "RGBa"):
            return image.convert(image.mode[:-1] + "A")
        if image.mode == "LAB":
            lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
            return ImageCms.applyTransform(image, ImageCms.buildTransform(lab, _SRGB, "LAB", "RGB"))
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16") or (image.mode == "I" and values.max() > 255):
        values = values / 257
    elif image.mode == "F" and values.min() >= 0 and values.max() <= 1:
        values = values * 255
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def _srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if image.mode not in ("RGB", "RGBA", "L", "LA", "CMYK"):
        image = image.convert("RGBA" if alpha else "RGB")
    elif image.mode in ("L", "RGB") and alpha:
        image = image.convert(image.mode + "A")
    if profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            colour = image.convert("RGB") if image.mode in ("LA", "RGBA") else image
            converted = ImageCms.profileToProfile(
                colour,
                source,
                _SRGB,
                outputMode="RGB",
                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            )
            if image.mode in ("LA", "RGBA"):
                converted.putalpha(image.getchannel("A"))
            return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: shown as sRGB, as browsers do
    return image.convert("RGBA" if image.mode in ("LA", "RGBA") else "RGB")


def _on_white(image: Image.Image) -> Image.Image:
    if image.mode != "RGBA":
        return image.convert("RGB")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image).convert("RGB")


def mean_error(rendition: Image.Image, reference: Image.Image) -> float:
    """Mean absolute difference per channel (0-255) once both are the rendition's size."""
    expected = reference.resize(rendition.size, Image.Resampling.LANCZOS)
    got = np.asarray(_on_white(rendition.convert("RGBA")), dtype=np.float64)
    return float(np.abs(got - np.asarray(expected, dtype=np.float64)).mean())

"""Local facts about a file: its SHA-256, the Idempotency-Key derived from it, its format.

The key is a function of the bytes alone, so a retry, a rerun, or the same photo under
another name all ask the server for the same image; the server refuses the same key with
other bytes (422), which a digest cannot produce.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

CHUNK = 1024 * 1024
KEY_PREFIX = "sha256-"

# Magic bytes of the formats the server accepts (it sniffs them the same way; it, not
# this, is the authority: this only spares sending files that cannot be images).
HEAD_BYTES = 32
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_SHA256_HEX = re.compile("[0-9a-f]{64}")


def derive_idempotency_key(sha256_hex: str) -> str:
    """``sha256-<64 hex digits>``: visible ASCII, as the server requires."""
    digest = sha256_hex.lower()
    if _SHA256_HEX.fullmatch(digest) is None:
        raise ValueError(f"not a SHA-256 hex digest: {sha256_hex!r}")
    return KEY_PREFIX + digest


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sniff_format(head: bytes) -> str | None:
    """``jpeg``, ``png``, ``gif``, ``webp``, ``tiff``, ``heif``, ``avif``, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        if head[8:12] in _AVIF_BRANDS:
            return "avif"
        if head[8:12] in _HEIF_BRANDS:
            return "heif"
    return None


CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "heif": "image/heif",
    "avif": "image/avif",
}


def content_type_of(head: bytes) -> str:
    fmt = sniff_format(head)
    return CONTENT_TYPES[fmt] if fmt else "application/octet-stream"

"""Thumbnailer settings (``IMGFLOW_THUMBNAIL_*``)."""

from __future__ import annotations

from pydantic import Field, field_validator

from imgflow_contracts.settings import WorkerSettings
from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat
from imgflow_thumbnailer.geometry import Fit


class ThumbnailerSettings(WorkerSettings):
    thumbnail_sizes: list[int] = Field(
        default=[150, 300, 600], description="Long-side pixel sizes of the renditions."
    )
    thumbnail_fit: Fit = Field(
        default=Fit.INSIDE,
        description="`inside`: whole image, long side at the size; `cover`: centred square crop.",
    )
    thumbnail_format: OutputFormat = Field(
        default=OutputFormat.WEBP, description="Encoding of the renditions: webp, jpeg or avif."
    )
    thumbnail_quality: int = Field(
        default=82, ge=1, le=100, description="Encoder quality of the renditions (1-100)."
    )
    thumbnail_webp_method: int = Field(
        default=EncodeOptions.webp_method,
        ge=0,
        le=6,
        description="WebP encoder effort (0-6): lower is faster, higher is smaller.",
    )
    thumbnail_webp_method_by_size: dict[int, int] = Field(
        default=dict(EncodeOptions.webp_method_by_size),
        description=(
            'WebP effort per rendition size, overriding the above, e.g. {"600": 2}: the '
            "large, rarely viewed size encoded faster (see the performance pages of the docs)."
        ),
    )
    thumbnail_avif_speed: int = Field(
        default=EncodeOptions.avif_speed,
        ge=0,
        le=10,
        description="AVIF encoder speed (0-10): higher is faster, lower is smaller.",
    )

    @field_validator("thumbnail_webp_method_by_size")
    @classmethod
    def _methods_in_range(cls, methods: dict[int, int]) -> dict[int, int]:
        if any(not 0 <= m <= 6 for m in methods.values()):
            raise ValueError("WebP methods are between 0 and 6")
        return methods

    @field_validator("thumbnail_sizes")
    @classmethod
    def _sizes_positive_and_unique(cls, sizes: list[int]) -> list[int]:
        if not sizes or any(s <= 0 or s > 8192 for s in sizes):
            raise ValueError("thumbnail sizes must be between 1 and 8192 pixels")
        return sorted(set(sizes))

    def encode_options(self) -> EncodeOptions:
        return EncodeOptions(
            format=self.thumbnail_format,
            quality=self.thumbnail_quality,
            webp_method=self.thumbnail_webp_method,
            webp_method_by_size=tuple(sorted(self.thumbnail_webp_method_by_size.items())),
            avif_speed=self.thumbnail_avif_speed,
        )

"""Thumbnailer settings (``IMGFLOW_THUMBNAIL_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from imgflow_contracts.settings import WorkerSettings


class ThumbnailerSettings(WorkerSettings):
    thumbnail_sizes: list[int] = Field(
        default=[150, 300, 600], description="Long-side pixel sizes of the renditions."
    )
    thumbnail_format: Literal["webp", "jpeg"] = Field(
        default="webp", description="Encoding of the renditions."
    )
    thumbnail_quality: int = Field(
        default=82, ge=1, le=100, description="Encoder quality of the renditions (1-100)."
    )

    @field_validator("thumbnail_sizes")
    @classmethod
    def _sizes_positive_and_unique(cls, sizes: list[int]) -> list[int]:
        if not sizes or any(s <= 0 or s > 8192 for s in sizes):
            raise ValueError("thumbnail sizes must be between 1 and 8192 pixels")
        return sorted(set(sizes))

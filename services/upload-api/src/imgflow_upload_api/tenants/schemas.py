"""Models of the usage and limits routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Within the columns' ranges (migration 0015: integer, bigint). The bigint ones stop at
# 2**53, which a JSON number (a double) holds exactly, so clients and validators agree.
INT32 = 2**31 - 1
INT64 = 2**53


class LimitValues(BaseModel):
    """Per-tenant limits; null: the deployment's default (which may be no limit)."""

    weight: int | None = Field(
        default=None, ge=1, le=1000, description="Share of the workers while others wait too."
    )
    upload_rate_per_s: float | None = Field(
        default=None, gt=0, le=1e6, description="Uploads a second, per API replica."
    )
    upload_burst: int | None = Field(
        default=None, ge=1, le=INT32, description="Uploads at once above it."
    )
    upload_concurrency: int | None = Field(
        default=None, ge=1, le=INT32, description="Uploads in progress at once, per API replica."
    )
    max_queued_jobs: int | None = Field(
        default=None, ge=1, le=INT32, description="Jobs waiting before uploads get 429."
    )
    max_images: int | None = Field(
        default=None, ge=0, le=INT64, description="Images stored, at most."
    )
    max_bytes: int | None = Field(
        default=None, ge=0, le=INT64, description="Bytes stored, at most."
    )


class LimitsUpdate(LimitValues):
    """The limits to set; a limit given as null goes back to the default, one left out
    keeps its value."""

    model_config = ConfigDict(extra="forbid")


class TenantLimits(BaseModel):
    tenant: str
    configured: LimitValues = Field(description="What is set for this tenant.")
    effective: LimitValues = Field(description="What applies: configured, else the default.")


class Usage(BaseModel):
    tenant: str
    images: int = Field(description="Images stored (trashed ones included).")
    bytes: int = Field(description="Bytes of the stored originals.")
    queued_jobs: dict[str, int] = Field(
        description="Jobs waiting to be handed to the workers, by kind (upload, bulk)."
    )
    uploads_in_progress: int = Field(
        description="Uploads of this tenant in progress: across the API replicas when its "
        "concurrency is limited, else in the API process answering."
    )
    limits: LimitValues = Field(description="The limits that apply (null: none).")

"""Models of the admin routes' requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from imgflow_contracts.queues import Stage

TENANT_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"

Stages = Annotated[list[Stage], Field(min_length=1, description="The stages to run again.")]


class ReprocessTenant(BaseModel):
    """Re-drive stages for every image of one tenant."""

    model_config = ConfigDict(extra="forbid")
    stages: Stages
    tenant: str = Field(pattern=TENANT_NAME, description="The tenant's name.")


class ReprocessAllTenants(BaseModel):
    """Re-drive stages for every image of every tenant."""

    model_config = ConfigDict(extra="forbid")
    stages: Stages
    all_tenants: Literal[True]


class ReprocessRun(BaseModel):
    id: UUID
    tenant: str | None = Field(description="The tenant whose images it runs; null: every tenant.")
    stages: list[Stage]
    state: Literal["running", "paused", "finished", "failed"]
    done: int = Field(description="Images whose stages were reset and re-enqueued.")
    skipped: int = Field(description="Images passed over: a worker was running the stage.")
    total: int = Field(description="Images in scope (at the start; at the end, those gone over).")
    batches: int
    reason: str | None = Field(description="Why it is paused, or why it failed.")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

"""Similar stacks as a client sees them: members, evidence, and a pick to suggest."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from imgflow_upload_api.duplicates.schemas import ThumbnailLink
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.stacks.pick import Frame, suggest_pick
from imgflow_upload_api.stacks.schemas import (
    SimilarStackView,
    StackEvidence,
    StackMember,
    StackResolution,
    SuggestedPick,
)

_NOT_SHOWN = ("rendition_sizes", "metadata")


def _member(m: dict[str, Any]) -> StackMember:
    url = f"/v1/images/{m['id']}"
    return StackMember(
        **{k: v for k, v in m.items() if k not in _NOT_SHOWN},
        url=url,
        original_url=f"{url}/original",
        thumbnails=[
            ThumbnailLink(size=size, url=f"{url}/thumbnails/{size}")
            for size in m["rendition_sizes"]
        ],
    )


def _frame(m: dict[str, Any]) -> Frame:
    return Frame(
        id=m["id"],
        sharpness=m["sharpness"],
        width=m["width"],
        height=m["height"],
        metadata=m["metadata"],
        created_at=m["created_at"],
    )


def _pick(frames: list[Frame]) -> SuggestedPick:
    pick = suggest_pick(frames)
    assert pick is not None  # a shown stack has two visible members or more
    return SuggestedPick(id=pick.id, reasons=list(pick.reasons))  # type: ignore[arg-type]


def resolution_of(row: dict[str, Any]) -> StackResolution | None:
    """How the stack's current version was resolved (a listing's row or a detail)."""
    if row["resolved_at"] is None:
        return None
    return StackResolution(resolved_at=row["resolved_at"], kept=row["kept"])


def summary_pick(frames: list[dict[str, Any]]) -> SuggestedPick:
    """The pick a listed stack's detail suggests, from the listing's jsonb facts."""
    return _pick(
        [
            _frame(
                {**f, "id": UUID(f["id"]), "created_at": datetime.fromisoformat(f["created_at"])}
            )
            for f in frames
        ]
    )


def stack_view(detail: dict[str, Any]) -> SimilarStackView:
    members = detail["members"]
    return SimilarStackView(
        id=detail["id"],
        version=detail["version"],
        created_at=detail["created_at"],
        updated_at=detail["updated_at"],
        members=[_member(m) for m in members],
        evidence=[
            StackEvidence(
                a=p["image_a"],
                b=p["image_b"],
                **{k: v for k, v in p.items() if k not in ("image_a", "image_b")},
            )
            for p in detail["pairs"]
        ],
        suggested_pick=_pick([_frame(m) for m in members]),
        resolution=resolution_of(detail),
    )


def stack_not_found(stack_id: object) -> Problem:
    return Problem(
        404,
        "similar-stack-not-found",
        "Similar stack not found",
        f"no similar stack has the id {stack_id}",
    )

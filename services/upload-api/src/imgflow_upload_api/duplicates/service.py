"""Duplicate groups as a client sees them: members, evidence, and a keeper to suggest."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from imgflow_upload_api.duplicates.keeper import Candidate, suggest_keeper
from imgflow_upload_api.duplicates.schemas import (
    DuplicateGroupView,
    GroupEvidence,
    GroupMember,
    SuggestedKeeper,
    ThumbnailLink,
)
from imgflow_upload_api.problems import Problem


def _member(m: dict[str, Any]) -> GroupMember:
    url = f"/v1/images/{m['id']}"
    return GroupMember(
        **{k: v for k, v in m.items() if k != "rendition_sizes"},
        url=url,
        original_url=f"{url}/original",
        thumbnails=[
            ThumbnailLink(size=size, url=f"{url}/thumbnails/{size}")
            for size in m["rendition_sizes"]
        ],
    )


def _candidate(m: dict[str, Any]) -> Candidate:
    return Candidate(
        id=m["id"],
        width=m["width"],
        height=m["height"],
        format=m["format"],
        byte_size=m["byte_size"],
        captured_at=m["captured_at"],
        has_exif=m["has_exif"],
        created_at=m["created_at"],
    )


def _from_json(m: dict[str, Any]) -> dict[str, Any]:
    """A member's facts as the listing's jsonb has them: ids and times as strings."""
    captured = m["captured_at"]
    return {
        **m,
        "id": UUID(m["id"]),
        "captured_at": datetime.fromisoformat(captured) if captured else None,
        "created_at": datetime.fromisoformat(m["created_at"]),
    }


def summary_keeper(candidates: list[dict[str, Any]]) -> SuggestedKeeper:
    """The keeper a listed group's detail suggests, from the listing's member facts."""
    keeper = suggest_keeper([_candidate(_from_json(m)) for m in candidates])
    assert keeper is not None  # a shown group has two visible members or more
    return SuggestedKeeper(id=keeper.id, reasons=list(keeper.reasons))


def group_view(detail: dict[str, Any]) -> DuplicateGroupView:
    members = detail["members"]
    keeper = suggest_keeper([_candidate(m) for m in members])
    assert keeper is not None  # a shown group has two members or more
    return DuplicateGroupView(
        id=detail["id"],
        version=detail["version"],
        created_at=detail["created_at"],
        updated_at=detail["updated_at"],
        members=[_member(m) for m in members],
        evidence=[
            GroupEvidence(
                a=p["image_a"],
                b=p["image_b"],
                **{k: v for k, v in p.items() if k not in ("image_a", "image_b")},
            )
            for p in detail["pairs"]
        ],
        suggested_keeper=SuggestedKeeper(id=keeper.id, reasons=list(keeper.reasons)),
    )


def group_not_found(group_id: object) -> Problem:
    return Problem(
        404,
        "duplicate-group-not-found",
        "Duplicate group not found",
        f"no group has the id {group_id}",
    )

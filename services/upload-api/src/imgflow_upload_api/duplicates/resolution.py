"""Resolving a duplicate group: trash copies, or dismiss the group ("not duplicates").

One transaction under the tenant's grouping lock (the deduper's too), so a resolve and a
regrouping never interleave: a resolve naming a version the group no longer has (a new
upload joined, a member was deleted) is a 409, and one that is answered has seen exactly
the members it names. Trashed images leave the group at once; what is left is flagged,
and regrouped within a second by the API's background loop (duplicates/tasks.py). The
answer is stored by (group, version), so the same resolve again answers the same, though
the group has changed or gone since (until IMGFLOW_RESOLUTION_RETENTION_DAYS).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from imgflow_runtime.db.duplicate_groups import lock_tenant_groups
from imgflow_upload_api.duplicates import repository
from imgflow_upload_api.duplicates.schemas import ResolveAnswer, ResolveRequest
from imgflow_upload_api.duplicates.service import group_not_found
from imgflow_upload_api.problems import Problem


def _changed(group_id: UUID, version: int | None) -> Problem:
    return Problem(
        409,
        "group-changed",
        "Group changed",
        f"group {group_id} has changed since that version: read it again and decide anew",
        current_version=version,
    )


def _check(request: ResolveRequest, members: set[UUID]) -> None:
    keep, trash = set(request.keep), set(request.trash)
    if request.dismiss and (keep or trash):
        raise Problem(422, "bad-resolution", "Bad resolution", "dismiss takes no keep or trash")
    if keep & trash:
        raise Problem(422, "bad-resolution", "Bad resolution", "an image is both kept and trashed")
    strangers = (keep | trash) - members
    if strangers:
        raise Problem(
            422,
            "not-a-member",
            "Not a member",
            "only the group's members can be kept or trashed",
            images=sorted(str(i) for i in strangers),
        )


async def resolve(
    pool: asyncpg.Pool, tenant_id: UUID, group_id: UUID, request: ResolveRequest
) -> ResolveAnswer:
    asked = request.model_dump(mode="json")
    async with pool.acquire() as conn, conn.transaction():
        await lock_tenant_groups(conn, tenant_id)
        done = await repository.stored_resolution(conn, tenant_id, group_id, request.version)
        if done is not None:
            if done[0] != asked:  # another decision was made on that version
                current = await repository.lock_group(conn, tenant_id, group_id)
                # the version to read it at, or None: that decision removed the group
                raise _changed(group_id, current[0] if current else None)
            return ResolveAnswer.model_validate(done[1])
        group = await repository.lock_group(conn, tenant_id, group_id)
        if group is None:
            raise group_not_found(group_id)
        version, members = group
        if version != request.version:
            raise _changed(group_id, version)
        _check(request, members)
        trashed = sorted(set(request.trash))
        if request.dismiss:
            await repository.dismiss(conn, tenant_id, sorted(members))
        elif trashed:
            await repository.trash_images(conn, trashed)
        if request.dismiss or len(members) - len(trashed) < 2:
            await repository.delete_group(conn, group_id)
            new_version = None
        elif trashed:
            new_version = await repository.group_changed(conn, group_id)
        else:
            new_version = version  # keeping only: nothing changes
        answer = ResolveAnswer(
            group_id=group_id,
            version=new_version,
            kept=sorted(members - set(trashed)) if not request.dismiss else [],
            trashed=trashed,
            dismissed=request.dismiss,
        )
        await repository.save_resolution(
            conn, tenant_id, group_id, request.version, asked, answer.model_dump(mode="json")
        )
    return answer

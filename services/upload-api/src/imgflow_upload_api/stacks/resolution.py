"""Resolving a similar stack: keep a pick, trash only what is named, or dismiss it.

The frames of a burst are photos, not copies: resolving trashes nothing unless ``trash``
names it. One transaction under the tenant's grouping lock (the deduper's too), so a
resolve and a restacking never interleave: a version the stack no longer has is a 409.
After a trash the stack is restacked at once in the same transaction (the rule of
``imgflow_runtime.stacking``): the answer's version is the stack's as it now stands, or
null when what is left is no stack. The answer is stored by (stack, version), so the same
resolve again answers the same.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from imgflow_runtime.db.duplicate_groups import lock_tenant_groups
from imgflow_runtime.db.similar_stacks import restack_around
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.stacks import repository
from imgflow_upload_api.stacks.schemas import StackResolveAnswer, StackResolveRequest
from imgflow_upload_api.stacks.service import stack_not_found


def _changed(stack_id: UUID, version: int | None) -> Problem:
    return Problem(
        409,
        "stack-changed",
        "Stack changed",
        f"similar stack {stack_id} has changed since that version: read it again and decide",
        current_version=version,
    )


def _check(request: StackResolveRequest, members: set[UUID]) -> None:
    trash = set(request.trash)
    named = trash | ({request.keep} if request.keep else set())
    if request.dismiss and named:
        raise Problem(422, "bad-resolution", "Bad resolution", "dismiss takes no keep or trash")
    if request.keep is not None and request.keep in trash:
        raise Problem(422, "bad-resolution", "Bad resolution", "an image is both kept and trashed")
    strangers = named - members
    if strangers:
        raise Problem(
            422,
            "not-a-member",
            "Not a member",
            "only the stack's members can be kept or trashed",
            images=sorted(str(i) for i in strangers),
        )


async def resolve(
    pool: asyncpg.Pool, tenant_id: UUID, stack_id: UUID, request: StackResolveRequest
) -> StackResolveAnswer:
    asked = request.model_dump(mode="json")
    async with pool.acquire() as conn, conn.transaction():
        await lock_tenant_groups(conn, tenant_id)
        done = await repository.stored_resolution(conn, tenant_id, stack_id, request.version)
        if done is not None:
            if done[0] != asked:  # another decision was made on that version
                current = await repository.lock_stack(conn, tenant_id, stack_id)
                raise _changed(stack_id, current[0] if current else None)
            return StackResolveAnswer.model_validate(done[1])
        stack = await repository.lock_stack(conn, tenant_id, stack_id)
        if stack is None:
            raise stack_not_found(stack_id)
        version, units = stack
        if version != request.version:
            raise _changed(stack_id, version)
        _check(request, set(units))
        trashed = sorted(set(request.trash))
        new_version: int | None
        if request.dismiss:
            await repository.dismiss(conn, tenant_id, units)
            await repository.delete_stack(conn, stack_id)
            new_version = None
        else:
            if trashed:
                await repository.trash_images(conn, trashed)
                # what is left, stacked again now (it may be no stack any more)
                await restack_around(conn, tenant_id, sorted(set(units) - set(trashed)), [stack_id])
            new_version = await repository.mark_resolved(conn, stack_id, request.keep)
        answer = StackResolveAnswer(
            stack_id=stack_id,
            version=new_version,
            kept=request.keep,
            trashed=trashed,
            dismissed=request.dismiss,
        )
        await repository.save_resolution(
            conn, tenant_id, stack_id, request.version, asked, answer.model_dump(mode="json")
        )
    return answer

"""Stored similar stacks: kept by the deduper after every check (right after the duplicate
groups), and by the API's background loop for the stacks a trash or a delete flagged.

As for groups (``duplicate_groups.py``): the image's component of *related* pairs
(duplicate and similar) is read with every member of the stacks stored for it, stacked
again by ``imgflow_runtime.stacking.restack`` (ids carried, a split keeps the id on the
larger part), and written back; versions go up when members change, and triggers
announce each change (``similar_stack.updated`` / ``.deleted``, migration 0020). A
component larger than WHOLE_COMPONENT is stacked around the image instead.

A stack holds whole duplicate groups: every two members of a stored group are given a
link before the rule runs, so a group is never cut (the rule's density inside a group is
1, far over the stacks' 1/400). A set of images that is one duplicate group (or one
image) is no stack: a stack holds two groups or ungrouped images at least, so a stack
always has a similar pair inside it. Same lock as the groups: a tenant's regroupings,
restackings and resolves never interleave.

The API's background loop regroups a group a trash or a delete flagged and restacks its
component in one transaction (``regroup_and_restack_dirty``), so a stack never holds a
group that has just shrunk or split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from uuid import UUID, uuid4

import asyncpg

from imgflow_runtime.db.duplicate_groups import (
    flagged_groups,
    lock_tenant_groups,
    regroup_around,
)
from imgflow_runtime.grouping import Regrouped
from imgflow_runtime.stacking import restack

log = logging.getLogger(__name__)

# As duplicate_groups.WHOLE_COMPONENT: up to this many images a component is stacked whole.
WHOLE_COMPONENT = 100


@dataclass(frozen=True)
class StackChanges:
    kept: int
    changed: int
    new: int
    retired: int


async def _partners(conn: asyncpg.Connection, images: Iterable[UUID]) -> set[UUID]:
    """``images`` and every image they pair with, duplicate or similar."""
    rows = await conn.fetch(
        """SELECT image_b AS id FROM duplicate_pairs WHERE image_a = ANY($1::uuid[])
           UNION SELECT image_a FROM duplicate_pairs WHERE image_b = ANY($1::uuid[])
           UNION SELECT image_b FROM similar_pairs WHERE image_a = ANY($1::uuid[])
           UNION SELECT image_a FROM similar_pairs WHERE image_b = ANY($1::uuid[])
           UNION SELECT unnest($1::uuid[])""",
        list(images),
    )
    return {r["id"] for r in rows}


async def _live(conn: asyncpg.Connection, images: Iterable[UUID]) -> set[UUID]:
    """Those of ``images`` neither trashed nor being deleted: the ones that may stack."""
    rows = await conn.fetch(
        """SELECT id FROM images WHERE id = ANY($1::uuid[])
              AND trashed_at IS NULL AND deleting_since IS NULL""",
        list(images),
    )
    return {r["id"] for r in rows}


async def _component(conn: asyncpg.Connection, seeds: Iterable[UUID]) -> set[UUID]:
    """The live images reachable from ``seeds`` through related pairs, breadth first;
    stops past WHOLE_COMPONENT (the caller then stacks around the seeds)."""
    seen = await _live(conn, seeds)
    frontier = set(seen)
    while frontier and len(seen) <= WHOLE_COMPONENT:
        frontier = await _live(conn, await _partners(conn, frontier) - seen)
        seen |= frontier
    return seen


async def _stored_stacks(
    conn: asyncpg.Connection, tenant_id: UUID, images: Iterable[UUID], ids: Iterable[UUID]
) -> dict[UUID, frozenset[UUID]]:
    """The tenant's stacks holding any of ``images``, and stacks ``ids`` (even if empty)."""
    rows = await conn.fetch(
        """SELECT s.id, coalesce(array_agg(m.image_id) FILTER (WHERE m.image_id IS NOT NULL),
                                 '{}') AS members
             FROM similar_stacks AS s
             LEFT JOIN similar_stack_members AS m ON m.stack_id = s.id
            WHERE s.tenant_id = $1
              AND (s.id = ANY($3::uuid[])
                   OR s.id IN (SELECT stack_id FROM similar_stack_members
                                WHERE image_id = ANY($2::uuid[])))
            GROUP BY s.id""",
        tenant_id,
        list(images),
        list(ids),
    )
    return {r["id"]: frozenset(r["members"]) for r in rows}


async def _units(conn: asyncpg.Connection, images: set[UUID]) -> dict[UUID, UUID]:
    """Each image's unit: its duplicate group's id, or the image itself when ungrouped."""
    rows = await conn.fetch(
        "SELECT image_id, group_id FROM duplicate_group_members WHERE image_id = ANY($1::uuid[])",
        list(images),
    )
    grouped = {r["image_id"]: r["group_id"] for r in rows}
    return {i: grouped.get(i, i) for i in images}


async def _related(
    conn: asyncpg.Connection, images: set[UUID], units: dict[UUID, UUID]
) -> list[tuple[UUID, UUID]]:
    """Duplicate and similar pairs among ``images``, and a link between every two members
    of one duplicate group (so the rule never cuts a group)."""
    rows = await conn.fetch(
        """SELECT image_a, image_b FROM duplicate_pairs
            WHERE image_a = ANY($1::uuid[]) AND image_b = ANY($1::uuid[])
           UNION SELECT image_a, image_b FROM similar_pairs
            WHERE image_a = ANY($1::uuid[]) AND image_b = ANY($1::uuid[])""",
        list(images),
    )
    pairs = [(r["image_a"], r["image_b"]) for r in rows]
    by_unit: dict[UUID, list[UUID]] = {}
    for image, unit in units.items():
        by_unit.setdefault(unit, []).append(image)
    for members in by_unit.values():
        pairs += combinations(sorted(members), 2)
    return pairs


async def _dismissals(conn: asyncpg.Connection, images: set[UUID]) -> list[tuple[UUID, UUID]]:
    rows = await conn.fetch(
        """SELECT image_a, image_b FROM similar_dismissals
            WHERE image_a = ANY($1::uuid[]) AND image_b = ANY($1::uuid[])""",
        list(images),
    )
    return [(r["image_a"], r["image_b"]) for r in rows]


def _is_stack(members: frozenset[UUID], units: dict[UUID, UUID]) -> bool:
    return len({units.get(i, i) for i in members}) >= 2


def only_stacks(result: Regrouped[UUID, UUID], units: dict[UUID, UUID]) -> Regrouped[UUID, UUID]:
    """The rule's sets that are stacks (two units or more); a stored stack whose set is
    now one duplicate group is retired."""
    kept = {i: s for i, s in result.kept.items() if _is_stack(s, units)}
    return Regrouped(
        kept=kept,
        changed=frozenset(i for i in result.changed if i in kept),
        new=tuple(s for s in result.new if _is_stack(s, units)),
        retired=result.retired | (frozenset(result.kept) - frozenset(kept)),
        similar=result.similar,
    )


async def _write(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    previous: dict[UUID, frozenset[UUID]],
    result: Regrouped[UUID, UUID],
) -> None:
    """Store ``result`` over ``previous`` (read under the lock), writing only what differs."""
    if result.retired:  # member rows go with them (ON DELETE CASCADE)
        await conn.execute(
            "DELETE FROM similar_stacks WHERE id = ANY($1::uuid[])", list(result.retired)
        )
    changed = [i for i in result.kept if i in result.changed]
    left = [(image, sid) for sid in changed for image in previous[sid] - result.kept[sid]]
    if left:
        await conn.execute(
            """DELETE FROM similar_stack_members AS m
                USING unnest($1::uuid[], $2::uuid[]) AS l (image_id, stack_id)
                WHERE m.image_id = l.image_id AND m.stack_id = l.stack_id""",
            [image for image, _ in left],
            [sid for _, sid in left],
        )
    if changed:
        # new members: a person's earlier decision no longer covers the stack
        await conn.execute(
            """UPDATE similar_stacks SET version = version + 1, dirty = false,
                                        resolved_at = NULL, kept = NULL,
                                        updated_at = clock_timestamp()
                WHERE id = ANY($1::uuid[])""",
            changed,
        )
    await conn.execute(
        "UPDATE similar_stacks SET dirty = false WHERE id = ANY($1::uuid[]) AND dirty",
        [i for i in result.kept if i not in result.changed],
    )
    new_ids = [uuid4() for _ in result.new]
    if new_ids:
        await conn.execute(
            "INSERT INTO similar_stacks (id, tenant_id) SELECT unnest($1::uuid[]), $2",
            new_ids,
            tenant_id,
        )
    joined = {image: sid for sid in changed for image in result.kept[sid] - previous[sid]} | {
        image: sid for sid, stack in zip(new_ids, result.new, strict=True) for image in stack
    }
    if joined:
        await conn.execute(
            """INSERT INTO similar_stack_members (image_id, stack_id)
               SELECT * FROM unnest($1::uuid[], $2::uuid[])
               ON CONFLICT (image_id) DO UPDATE SET stack_id = EXCLUDED.stack_id""",
            list(joined),
            list(joined.values()),
        )


async def _scope(
    conn: asyncpg.Connection, tenant_id: UUID, seeds: Sequence[UUID], stack_ids: Sequence[UUID]
) -> tuple[set[UUID], dict[UUID, frozenset[UUID]]]:
    """The images to stack again and the stacks stored for them: the whole component,
    grown until every stored stack it touches lies inside it; or, past WHOLE_COMPONENT,
    the seeds, their partners and the members of those images' stored stacks."""
    previous = await _stored_stacks(conn, tenant_id, seeds, stack_ids)
    images = await _component(conn, set(seeds).union(*previous.values()))
    while len(images) <= WHOLE_COMPONENT:
        previous = await _stored_stacks(conn, tenant_id, images, stack_ids)
        reach = set().union(*previous.values()) - images
        grown = images | await _component(conn, reach) if reach else images
        if grown == images:
            return images, previous
        images = grown
    near = await _partners(conn, seeds)
    previous = await _stored_stacks(conn, tenant_id, near, stack_ids)
    return await _live(conn, near.union(*previous.values())), previous


async def restack_around(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    seeds: Sequence[UUID],
    stack_ids: Sequence[UUID] = (),
) -> StackChanges:
    """Stack the component of ``seeds`` (and of stacks ``stack_ids``) again and store it."""
    async with conn.transaction():
        await lock_tenant_groups(conn, tenant_id)
        images, previous = await _scope(conn, tenant_id, seeds, stack_ids)
        units = await _units(conn, images)
        result = only_stacks(
            restack(
                await _related(conn, images, units),
                previous,
                cannot_link=await _dismissals(conn, images),
            ),
            units,
        )
        await _write(conn, tenant_id, previous, result)
    return StackChanges(len(result.kept), len(result.changed), len(result.new), len(result.retired))


async def restack_dirty(conn: asyncpg.Connection, limit: int) -> int:
    """Restack up to ``limit`` stacks a trash or a deletion flagged; how many were."""
    rows = await conn.fetch(
        """SELECT s.id, s.tenant_id,
                  array_agg(m.image_id) FILTER (WHERE m.image_id IS NOT NULL) AS members
             FROM similar_stacks AS s
             LEFT JOIN similar_stack_members AS m ON m.stack_id = s.id
            WHERE s.dirty GROUP BY s.id ORDER BY min(s.updated_at) LIMIT $1""",
        limit,
    )
    done = 0
    for r in rows:
        try:
            await restack_around(conn, r["tenant_id"], r["members"] or [], [r["id"]])
            done += 1
        except (asyncpg.PostgresError, ValueError):
            # one stack that cannot be restacked must not hold back those behind it
            log.exception("could not restack similar stack %s; it stays flagged", r["id"])
    return done


async def regroup_and_restack_dirty(conn: asyncpg.Connection, limit: int) -> int:
    """Regroup up to ``limit`` groups a trash or a deletion flagged, each with its stacks
    in the same transaction (a stack holds whole groups, so a group that shrank or split
    changes its stack); returns how many were regrouped.

    The deduper's order: the tenant's lock, the groups, then the stacks. A trash or a
    delete (images, then groups, then stacks, by its triggers) takes its row locks in that
    order too, so the two cannot deadlock.
    """
    done = 0
    for r in await flagged_groups(conn, limit):
        members: list[UUID] = r["members"] or []
        try:
            async with conn.transaction():
                await lock_tenant_groups(conn, r["tenant_id"])
                await regroup_around(conn, r["tenant_id"], members, [r["id"]])
                # every image the group held before: the stacks of each part it split into
                if members:
                    await restack_around(conn, r["tenant_id"], members)
            done += 1
        except (asyncpg.PostgresError, ValueError):
            # one group that cannot be regrouped must not hold back those behind it
            log.exception("could not regroup duplicate group %s; it stays flagged", r["id"])
    return done

"""Stored duplicate groups: kept by the deduper after every check, and by the API's
background loop for the groups a trash or a delete flagged (``regroup_dirty``).

The groups inside one connected component of the pairs depend on that component alone
(grouping.py), so after an image's pairs change, its component (with every image of the
groups stored for it) is read, grouped again with the average-linkage rule, and written
back; a component larger than WHOLE_COMPONENT is kept around the image instead (the
groups its pairs touch). A group keeps its id while images join or leave it (a split
keeps it on the larger part), its version goes up when its members change, groups no
longer made are deleted: an upload's group events are the groups it touched. Triggers
announce each change (``duplicate_group.updated`` / ``.deleted``, migration 0011).

Regroupings that touch the same images are serialised, and each reads the pairs as
committed: every pair write is followed by a regrouping, so the last one of a component
sees its final pairs, whatever the order the checks ran in. The locks are per image
(``lock_group_images``): two checks in different components of one tenant regroup in
parallel, and so do two in distant parts of one large component; a resolve still takes
the whole tenant (``lock_tenant_groups``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg

from imgflow_runtime.grouping import Pair, Regrouped, Rule, regroup

log = logging.getLogger(__name__)

# A component up to this size is regrouped whole after every change of its pairs: the
# stored groups are exactly the rule's grouping of every pair (in-process about 0.03 s at
# 60 images, 0.08 s at 125, 0.19 s at 250, 40 pairs an image). A larger one (a burst of
# hundreds of frames, a library of product shots on white) is regrouped around the image
# instead (``_around``): the image, the images it pairs with, and every member of their
# stored groups, from scratch over the pairs among them. Cutting such a component afresh
# at every check (the rule before: a 250-image cut) moved the cut each time: ~9 groups
# retired and ~9 made, ~41 group events an upload, for a change that touched one group.
# 600 look-alike uploads through the running system: 11.0 group events an upload before,
# 0.85 now, and the stored groups nearer the rule's grouping of every pair from scratch
# (pairs of images grouped together: 0.88 of the stored ones are the rule's, 0.85 of the
# rule's are stored; before 0.85 and 0.63). Starting average linkage from the stored
# groups instead (no split unless a pair is lost) made 0.61 events but drifted: 0.51 and
# 0.59.
WHOLE_COMPONENT = 100
_LOCK_CLASS = 9  # hashtextextended seed of the per-tenant regrouping lock
_IMAGE_LOCK_CLASS = 0x0D0F_6E0A_0000_0027  # mixed into an image's lock key (one class)
# Attempts at locking a regrouping's images before it falls back to the tenant's lock:
# the set read before locking can grow before the locks are held (a concurrent check
# joined it); each retry locks what the last one found, from the start, in key order.
_LOCK_ATTEMPTS = 4


@dataclass(frozen=True)
class GroupChanges:
    kept: int
    changed: int
    new: int
    retired: int


async def lock_tenant_groups(conn: asyncpg.Connection, tenant_id: UUID) -> None:
    """Until the transaction ends: nothing else regroups or resolves the tenant's groups
    (a resolve takes this), so a group's version says all that changed it."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text, $2))",
        str(tenant_id),
        _LOCK_CLASS,
    )


def _image_lock_key(image: UUID) -> int:
    """A signed 64-bit advisory lock key for an image (its id's first 8 bytes, mixed)."""
    return int.from_bytes(image.bytes[:8], "big", signed=True) ^ _IMAGE_LOCK_CLASS


async def lock_group_images(conn: asyncpg.Connection, tenant_id: UUID, images: set[UUID]) -> None:
    """Until the transaction ends: this regrouping alone reads and writes the groups of
    ``images`` (every image whose group it may read or write, see ``_touched``).

    The tenant's lock is taken shared, so a resolve (exclusive) waits for the regroupings
    in flight and they for it, as before; then each image's lock, in key order, so two
    regroupings never wait on each other in a circle. One statement: ``unnest`` yields
    the sorted keys in order. Each lock takes a slot of PostgreSQL's shared lock table
    (``max_locks_per_transaction`` times connections: 6,400 by default) until the commit; a
    regrouping holds at most a component of WHOLE_COMPONENT or a large one's neighbourhood.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock_shared(hashtextextended($1::text, $2))",
        str(tenant_id),
        _LOCK_CLASS,
    )
    keys = sorted({_image_lock_key(i) for i in images})
    await conn.execute(
        "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k", keys
    )


def _touched(images: set[UUID], previous: dict[UUID, frozenset[UUID]]) -> set[UUID]:
    """What a regrouping of ``images`` over its stored groups ``previous`` may change the
    group of: the images, and every member of those groups (they may leave them)."""
    return images.union(*previous.values())


async def _component(conn: asyncpg.Connection, tenant_id: UUID, seeds: Sequence[UUID]) -> set[UUID]:
    """The images reachable from ``seeds`` through pairs (the seeds included), but not
    trashed ones; at most WHOLE_COMPONENT + 1 of them (more: too large to regroup whole)."""
    rows = await conn.fetch(
        """WITH RECURSIVE comp(id) AS (
               SELECT i.id FROM images AS i
                WHERE i.id = ANY($1::uuid[]) AND i.trashed_at IS NULL
                  AND i.deleting_since IS NULL
               UNION
               SELECT o.id
                 FROM comp AS c JOIN duplicate_pairs AS p
                   ON (p.image_a = c.id OR p.image_b = c.id) AND p.tenant_id = $2
                 JOIN images AS o
                   ON o.id = CASE WHEN p.image_a = c.id THEN p.image_b ELSE p.image_a END
                  -- trashed or being deleted: grouped with nothing
                  AND o.trashed_at IS NULL AND o.deleting_since IS NULL
           )
           SELECT id FROM comp LIMIT $3""",
        list(seeds),
        tenant_id,
        WHOLE_COMPONENT + 1,
    )
    return {r["id"] for r in rows}


async def _stored_groups(
    conn: asyncpg.Connection, tenant_id: UUID, images: Iterable[UUID], ids: Iterable[UUID]
) -> dict[UUID, frozenset[UUID]]:
    """The tenant's groups holding any of ``images``, and groups ``ids`` (even if empty)."""
    rows = await conn.fetch(
        """SELECT g.id, coalesce(array_agg(m.image_id) FILTER (WHERE m.image_id IS NOT NULL),
                                 '{}') AS members
             FROM duplicate_groups AS g
             LEFT JOIN duplicate_group_members AS m ON m.group_id = g.id
            WHERE g.tenant_id = $1
              AND (g.id = ANY($3::uuid[])
                   OR g.id IN (SELECT group_id FROM duplicate_group_members
                                WHERE image_id = ANY($2::uuid[])))
            GROUP BY g.id""",
        tenant_id,
        list(images),
        list(ids),
    )
    return {r["id"]: frozenset(r["members"]) for r in rows}


async def _partners(conn: asyncpg.Connection, images: Iterable[UUID]) -> set[UUID]:
    """``images`` and every image they pair with (two index scans, no recursion)."""
    rows = await conn.fetch(
        """SELECT image_b AS id FROM duplicate_pairs WHERE image_a = ANY($1::uuid[])
           UNION SELECT image_a FROM duplicate_pairs WHERE image_b = ANY($1::uuid[])
           UNION SELECT unnest($1::uuid[])""",
        list(images),
    )
    return {r["id"] for r in rows}


async def _live(conn: asyncpg.Connection, images: Iterable[UUID]) -> set[UUID]:
    """Those of ``images`` neither trashed nor being deleted: the ones that may group."""
    rows = await conn.fetch(
        """SELECT id FROM images WHERE id = ANY($1::uuid[])
              AND trashed_at IS NULL AND deleting_since IS NULL""",
        list(images),
    )
    return {r["id"] for r in rows}


async def _pairs(conn: asyncpg.Connection, images: set[UUID]) -> list[Pair[UUID]]:
    rows = await conn.fetch(
        """SELECT image_a, image_b, score FROM duplicate_pairs
            WHERE image_a = ANY($1::uuid[]) AND image_b = ANY($1::uuid[])""",
        list(images),
    )
    return [Pair(r["image_a"], r["image_b"], float(r["score"])) for r in rows]


async def _dismissals(conn: asyncpg.Connection, images: set[UUID]) -> list[tuple[UUID, UUID]]:
    rows = await conn.fetch(
        """SELECT image_a, image_b FROM duplicate_dismissals
            WHERE image_a = ANY($1::uuid[]) AND image_b = ANY($1::uuid[])""",
        list(images),
    )
    return [(r["image_a"], r["image_b"]) for r in rows]


async def _write(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    previous: dict[UUID, frozenset[UUID]],
    result: Regrouped[UUID, UUID],
) -> None:
    """Store ``result`` over ``previous`` (the groups as stored, read under the lock).

    Only member rows that differ are written: a change often touches a big group by a
    member or two, and rewriting every row of each changed group was most of the
    upkeep's PostgreSQL time.
    """
    if result.retired:  # their member rows go with them (ON DELETE CASCADE)
        await conn.execute(
            "DELETE FROM duplicate_groups WHERE id = ANY($1::uuid[])", list(result.retired)
        )
    changed = [i for i in result.kept if i in result.changed]
    left = [(image, gid) for gid in changed for image in previous[gid] - result.kept[gid]]
    if left:
        await conn.execute(
            """DELETE FROM duplicate_group_members AS m
                USING unnest($1::uuid[], $2::uuid[]) AS l (image_id, group_id)
                WHERE m.image_id = l.image_id AND m.group_id = l.group_id""",
            [image for image, _ in left],
            [gid for _, gid in left],
        )
    if changed:
        await conn.execute(
            """UPDATE duplicate_groups SET version = version + 1, dirty = false,
                                          updated_at = clock_timestamp()
                WHERE id = ANY($1::uuid[])""",
            changed,
        )
    await conn.execute(
        "UPDATE duplicate_groups SET dirty = false WHERE id = ANY($1::uuid[]) AND dirty",
        [i for i in result.kept if i not in result.changed],
    )
    new_ids = [uuid4() for _ in result.new]
    if new_ids:
        await conn.execute(
            """INSERT INTO duplicate_groups (id, tenant_id)
               SELECT unnest($1::uuid[]), $2""",
            new_ids,
            tenant_id,
        )
    # Keyed by image: the rule never puts an image in two groups, and if a bug did, the
    # last would win rather than the statement fail.
    joined = {image: gid for gid in changed for image in result.kept[gid] - previous[gid]} | {
        image: gid for gid, group in zip(new_ids, result.new, strict=True) for image in group
    }
    if joined:
        # An image joining may still hold a row in a group it left (deleted above) or in
        # a retired one (gone with it); the upsert moves any row that is left.
        await conn.execute(
            """INSERT INTO duplicate_group_members (image_id, group_id)
               SELECT * FROM unnest($1::uuid[], $2::uuid[])
               ON CONFLICT (image_id) DO UPDATE SET group_id = EXCLUDED.group_id""",
            list(joined),
            list(joined.values()),
        )


async def _whole_component(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    images: set[UUID],
    group_ids: Sequence[UUID],
) -> tuple[set[UUID], dict[UUID, frozenset[UUID]]]:
    """The component grown until every stored group it touches lies inside it."""
    while True:
        previous = await _stored_groups(conn, tenant_id, images, group_ids)
        # A stored group reaching outside the component (a member's pair went away) is
        # regrouped whole, with the component of its other members.
        reach = set().union(*previous.values()) - images
        if not reach or len(images) > WHOLE_COMPONENT:
            return images, previous
        grown = images | await _component(conn, tenant_id, sorted(reach))
        if grown == images:  # what is left out is trashed: it leaves its group
            return images, previous
        images = grown


async def _around(
    conn: asyncpg.Connection, tenant_id: UUID, seeds: Sequence[UUID], group_ids: Sequence[UUID]
) -> tuple[set[UUID], dict[UUID, frozenset[UUID]]]:
    """The seeds, the images they pair with, and every member of the stored groups of
    any of those (trashed ones left out): what a change of the seeds' pairs can move."""
    near = await _partners(conn, seeds)
    previous = await _stored_groups(conn, tenant_id, near, group_ids)
    return await _live(conn, near.union(*previous.values())), previous


async def regroup_around(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    seeds: Sequence[UUID],
    group_ids: Sequence[UUID] = (),
) -> GroupChanges:
    """Group the component of ``seeds`` (and of groups ``group_ids``) again and store it.

    ``seeds``: an image just checked, then the images whose pair with it went. In a
    component larger than WHOLE_COMPONENT, only the seeds' neighbourhood is regrouped
    (``_around``): the groups their pairs touch, from scratch, over the pairs among them.
    """
    locked: set[UUID] = set()
    for attempt in range(_LOCK_ATTEMPTS + 1):
        async with conn.transaction():
            if attempt == _LOCK_ATTEMPTS:  # still growing under concurrent checks
                await lock_tenant_groups(conn, tenant_id)
            else:
                images, previous = await _regrouped(conn, tenant_id, seeds, group_ids)
                locked |= _touched(images, previous)
                await lock_group_images(conn, tenant_id, locked)
            # Read again under the locks: what is stored now, with what committed meanwhile.
            images, previous = await _regrouped(conn, tenant_id, seeds, group_ids)
            if attempt < _LOCK_ATTEMPTS and not _touched(images, previous) <= locked:
                # Taking the missing locks now could wait in a circle: end the
                # transaction (nothing written; its locks go with it) and lock all of
                # it, in order, afresh.
                locked |= _touched(images, previous)
                continue
            result: Regrouped[UUID, UUID] = regroup(
                await _pairs(conn, images),
                previous,
                Rule.AVERAGE_LINK,
                cannot_link=await _dismissals(conn, images),
            )
            await _write(conn, tenant_id, previous, result)
            break
    return GroupChanges(len(result.kept), len(result.changed), len(result.new), len(result.retired))


async def _regrouped(
    conn: asyncpg.Connection, tenant_id: UUID, seeds: Sequence[UUID], group_ids: Sequence[UUID]
) -> tuple[set[UUID], dict[UUID, frozenset[UUID]]]:
    """The images to regroup for ``seeds`` (and groups ``group_ids``), with their stored
    groups: the whole component if small enough, else the seeds' neighbourhood."""
    previous = await _stored_groups(conn, tenant_id, seeds, group_ids)
    start = set(seeds).union(*previous.values())
    images = await _component(conn, tenant_id, sorted(start))
    if len(images) <= WHOLE_COMPONENT:
        images, previous = await _whole_component(conn, tenant_id, images, group_ids)
    if len(images) > WHOLE_COMPONENT:
        images, previous = await _around(conn, tenant_id, seeds, group_ids)
    return images, previous


async def flagged_groups(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` groups a trash or a deletion left dirty (flagged), oldest flag
    first: ``id``, ``tenant_id`` and ``members`` (None when it has none left)."""
    return await conn.fetch(
        """SELECT g.id, g.tenant_id, array_agg(m.image_id) FILTER (WHERE m.image_id IS NOT NULL)
                  AS members
             FROM duplicate_groups AS g
             LEFT JOIN duplicate_group_members AS m ON m.group_id = g.id
            WHERE g.dirty GROUP BY g.id ORDER BY min(g.updated_at) LIMIT $1""",
        limit,
    )


async def regroup_dirty(conn: asyncpg.Connection, limit: int) -> int:
    """Regroup up to ``limit`` groups a trash or a deletion left dirty (flagged); returns
    how many were regrouped."""
    regrouped = 0
    for r in await flagged_groups(conn, limit):
        try:
            await regroup_around(conn, r["tenant_id"], r["members"] or [], [r["id"]])
            regrouped += 1
        except (asyncpg.PostgresError, ValueError):
            # One group that cannot be regrouped must not hold back those behind it (the
            # oldest flag goes first); it stays flagged and is tried again next pass.
            log.exception("could not regroup duplicate group %s; it stays flagged", r["id"])
    return regrouped

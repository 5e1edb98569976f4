"""A page of a tenant's image sets: the query the duplicate groups' and the similar
stacks' listings share (their cursors and page assembly: paging.py).

A set is a row of its table (``tenant_id``, ``updated_at``, ``id``, indexed on
``(tenant_id, updated_at, id)``) and its members, rows of a member table that name the
set and an image. A page is the sets latest changed first, after the cursor's position,
each with its size and the facts of its first members (oldest first), counting and
showing only visible members (an image being deleted is hidden everywhere), and only
sets with two or more of them (a set a deletion left smaller waits to be regrouped).
Each listing says what differs: its tables, its columns, its members' facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True)
class ImageSets:
    """What one listing reads. SQL fragments, written by the repositories, never from
    input: ``alias`` names the set table in ``columns``; ``facts`` are read from each
    visible member image ``i`` and returned, a JSON list, as ``facts_as``."""

    table: str
    alias: str
    columns: str
    member_table: str
    member_key: str
    facts: str
    facts_as: str

    @property
    def shown(self) -> str:
        """The condition that the set row ``alias`` is shown, as a page counts: for the
        detail's query, so a set is found where it is listed."""
        return f"""(SELECT count(*) FROM {self.member_table} AS c
                      JOIN images AS v ON v.id = c.image_id
                     WHERE c.{self.member_key} = {self.alias}.id
                       AND v.deleting_since IS NULL) >= 2"""


async def set_page(
    conn: asyncpg.Connection,
    sets: ImageSets,
    tenant_id: UUID,
    after: tuple[datetime, UUID] | None,
    limit: int,
    max_facts: int,
    only: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Up to ``limit`` of the tenant's sets after the position, each with its columns,
    ``size`` and the facts of its first ``max_facts`` visible members; ``only``: more
    conditions on the set, constant SQL (no parameters)."""
    s = sets.alias
    # One pass over each listed set's visible members gives its size (for the filter and
    # the answer) and its first members' facts: two passes read every member twice, half
    # the page's buffers. (An aggregate: the planner keeps the LATERAL one subquery a set.)
    # The keyset and the other conditions only when asked for, each page shape its own
    # statement: written as "$4 IS NULL OR (updated_at, id) < ($4, $5)" a generic plan
    # (asyncpg prepares, PostgreSQL may switch to one after five runs) filters every
    # newer set instead of seeking to the position, and a page costs more the deeper it is.
    args: list[Any] = [tenant_id, limit, max_facts]
    where = ""
    if after is not None:
        args += after
        where += f" AND ({s}.updated_at, {s}.id) < (${len(args) - 1}, ${len(args)})"
    where += "".join(f" AND {condition}" for condition in only)
    rows = await conn.fetch(
        f"""SELECT {sets.columns}, shown.size, shown.{sets.facts_as}
              FROM {sets.table} AS {s}
             CROSS JOIN LATERAL (
                   SELECT count(*) AS size,
                          coalesce(jsonb_agg(to_jsonb(f) - 'n' ORDER BY f.n)
                                     FILTER (WHERE f.n <= $3), '[]') AS {sets.facts_as}
                     FROM (SELECT {sets.facts},
                                  row_number() OVER (ORDER BY i.created_at, i.id) AS n
                             FROM {sets.member_table} AS m
                             JOIN images AS i ON i.id = m.image_id
                            WHERE m.{sets.member_key} = {s}.id
                              AND i.deleting_since IS NULL) AS f
                   ) AS shown
             WHERE {s}.tenant_id = $1 AND shown.size >= 2{where}
             ORDER BY {s}.updated_at DESC, {s}.id DESC
             LIMIT $2""",
        *args,
    )
    return [dict(r) for r in rows]

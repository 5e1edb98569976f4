"""`imgflow groups` (list, show, resolve) and `imgflow restore`: reviewing the duplicate
groups the server keeps, and acting on them.

Resolving trashes copies, it does not delete them: `imgflow restore ID` brings one back.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn
from uuid import UUID

import click

from imgflow_client.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    Context,
    err,
    fail,
    handled,
    jsonable,
    new_table,
    out,
    page_size,
    run_async,
)
from imgflow_client.cli.review import first, image_ids, reason_words
from imgflow_client.errors import Conflict, NotFound
from imgflow_client.models import (
    DuplicateGroupSummary,
    DuplicateGroupView,
    ResolveAnswer,
    SuggestedKeeper,
)

if TYPE_CHECKING:
    from imgflow_client.async_client import AsyncClient

# Group views fetched at once for the listing's keeper column.
VIEW_CONCURRENCY = 8


@click.group(invoke_without_command=True)
@click.option("-n", "--limit", type=click.IntRange(1), help="At most this many groups.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per group.")
@click.pass_context
@handled
def groups(ctx: click.Context, limit: int | None, as_json: bool) -> None:
    """Duplicate groups, the latest changed first; `show` and `resolve` act on one."""
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj

    async def work() -> list[tuple[DuplicateGroupSummary, SuggestedKeeper | None]]:
        async with obj.client() as client:
            summaries = await first(client.duplicate_groups(page_size=page_size(limit)), limit)
            # The listing names each group's keeper; a server older than that field does
            # not, and only its groups' views are asked.
            keepers = await _keepers(client, summaries)
        return list(zip(summaries, keepers, strict=True))

    listed = run_async(work())
    if as_json:
        for summary, keeper in listed:
            line = {**jsonable(summary), "suggested_keeper": jsonable(keeper)}
            print(json.dumps(line))
        return
    if not listed:
        out.print("no duplicate groups")
        return
    table = new_table("group", "members", "version", "suggested keeper", "updated")
    for summary, keeper in listed:
        table.add_row(
            str(summary.id),
            str(summary.size),
            str(summary.version),
            f"{keeper.id} ({reason_words(keeper.reasons[0])})"
            if keeper
            else "(resolved meanwhile)",
            summary.updated_at.isoformat(timespec="seconds"),
        )
    out.print(table)


async def _keepers(
    client: AsyncClient, summaries: list[DuplicateGroupSummary]
) -> list[SuggestedKeeper | None]:
    import asyncio

    slots = asyncio.Semaphore(VIEW_CONCURRENCY)

    async def keeper(summary: DuplicateGroupSummary) -> SuggestedKeeper | None:
        if summary.suggested_keeper is not None:
            return summary.suggested_keeper
        async with slots:
            try:
                return (await client.get_duplicate_group(summary.id)).suggested_keeper
            except NotFound:  # resolved or regrouped since the page was read
                return None

    return list(await asyncio.gather(*(keeper(s) for s in summaries)))


@groups.command()
@click.argument("group_id")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON.")
@click.pass_obj
@handled
def show(obj: Context, group_id: str, as_json: bool) -> None:
    """A group's members, the evidence between them, and the keeper the server suggests."""

    async def work() -> DuplicateGroupView:
        async with obj.client() as client:
            return await _group(client, group_id)

    view = run_async(work())
    if as_json:
        print(json.dumps(jsonable(view)))
        return
    keeper = view.suggested_keeper
    out.print(
        f"[bold]group {view.id}[/]  version {view.version}  {len(view.members)} members  "
        f"updated {view.updated_at.isoformat(timespec='seconds')}"
    )
    number = {m.id: i for i, m in enumerate(view.members, 1)}
    members = new_table(
        "#", "image", "format", "pixels", "bytes", "captured", "exif", "uploaded", ""
    )
    for m in view.members:
        members.add_row(
            str(number[m.id]),
            str(m.id),
            m.format or "?",
            f"{m.width}x{m.height}" if m.width else "?",
            f"{m.byte_size:,}",
            m.captured_at.isoformat(timespec="seconds") if m.captured_at else "",
            "yes" if m.has_exif else "no",
            m.created_at.isoformat(timespec="seconds"),
            "suggested keeper" if m.id == keeper.id else "",
        )
    out.print(members)
    evidence = new_table(
        "pair", "method", "score", "cosine", "view cosine", "phash distance", "basis"
    )
    for e in view.evidence:
        evidence.add_row(
            " ".join(f"#{n}" for n in sorted((number.get(e.a, 0), number.get(e.b, 0)))),
            e.method,
            f"{e.score:.3f}",
            _number(e.cosine),
            _number(e.view_cosine),
            "" if e.phash_distance is None else str(e.phash_distance),
            e.basis or "",
        )
    out.print(evidence)
    out.print(
        f"suggested keeper: #{number.get(keeper.id, '?')} {keeper.id}, for "
        + ", then ".join(reason_words(r) for r in keeper.reasons)
    )
    out.print(
        f"to keep it and trash the others: imgflow groups resolve {view.id} --keep-suggested "
        f"--version {view.version}"
    )


@dataclass(frozen=True)
class Plan:
    keep: list[UUID]
    trash: list[UUID]


class PlanError(Exception):
    """The resolution asked for cannot be made; the message says why."""


def plan_resolution(
    view: DuplicateGroupView | None,
    keep: list[UUID],
    trash: list[UUID],
    keep_suggested: bool,
) -> Plan:
    """What to keep and trash. Without ``trash``, every member not kept is trashed (which
    needs the group's view); a resolution that would change nothing, or trash every
    member, is refused: neither is what someone resolving duplicates means."""
    if keep_suggested:
        assert view is not None
        keep = [*keep, view.suggested_keeper.id]
    if set(keep) & set(trash):
        raise PlanError("an image cannot be both kept and trashed")
    if view is None:  # trash named, version named: the server checks the rest
        return Plan(keep, trash)
    members = {m.id for m in view.members}
    strangers = (set(keep) | set(trash)) - members
    if strangers:
        raise PlanError(
            f"not members of group {view.id}: {', '.join(sorted(map(str, strangers)))} "
            f"(`imgflow groups show {view.id}` lists them)"
        )
    if not trash:
        trash = sorted(members - set(keep))
    if not trash:
        raise PlanError(
            "every member would be kept, which changes nothing; if they are not duplicates, "
            "say so with --dismiss"
        )
    if set(trash) == members:
        raise PlanError("that would trash every member: keep one with --keep")
    return Plan(keep, trash)


@groups.command()
@click.argument("group_id")
@click.option("--keep", "keep", multiple=True, metavar="IMAGE_ID", help="Keep this member.")
@click.option(
    "--trash", "trash", multiple=True, metavar="IMAGE_ID",
    help="Trash this member (default: every member not kept).",
)  # fmt: skip
@click.option("--keep-suggested", is_flag=True, help="Keep the server's suggested keeper.")
@click.option("--dismiss", is_flag=True, help="Not duplicates: never group these together again.")
@click.option(
    "--version", type=click.IntRange(1),
    help="The group's version you decided on (`groups show`); default: its version now.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The API's answer.")
@click.pass_obj
@handled
def resolve(
    obj: Context,
    group_id: str,
    keep: tuple[str, ...],
    trash: tuple[str, ...],
    keep_suggested: bool,
    dismiss: bool,
    version: int | None,
    as_json: bool,
) -> None:
    """Keep some members of a group and trash the others, or --dismiss it.

    A group that changed since the version decided on (a copy joined, a member left) is
    not touched: look at it again. Trashed images can be restored with `imgflow restore`.
    """
    if dismiss and (keep or trash or keep_suggested):
        fail("--dismiss takes no --keep, --trash or --keep-suggested", EXIT_USAGE)
    if not (dismiss or keep or trash or keep_suggested):
        fail(
            "say what to do: --keep ID (the other members are trashed), --keep-suggested, "
            "--trash ID, or --dismiss",
            EXIT_USAGE,
        )
    keep_ids, trash_ids = image_ids(keep), image_ids(trash)

    async def work() -> ResolveAnswer:
        async with obj.client() as client:
            view = None
            if version is None or keep_suggested or (not dismiss and not trash_ids):
                view = await _group(client, group_id)
                if version is not None and view.version != version:
                    _changed(group_id, version, view.version)
            decided_on = version if version is not None else view.version  # type: ignore[union-attr]
            try:
                if dismiss:
                    return await client.dismiss_duplicate_group(group_id, version=decided_on)
                try:
                    plan = plan_resolution(view, keep_ids, trash_ids, keep_suggested)
                except PlanError as exc:
                    fail(str(exc), EXIT_USAGE)
                return await client.resolve_duplicate_group(
                    group_id, version=decided_on, keep=plan.keep, trash=plan.trash
                )
            except Conflict as exc:
                if exc.code != "group-changed":
                    raise
                _changed(group_id, decided_on, exc.problem.get("current_version"))

    answer = run_async(work())
    if as_json:
        print(json.dumps(jsonable(answer)))
        return
    if answer.dismissed:
        out.print(f"dismissed group {answer.group_id}: its images will not be grouped again")
        return
    out.print(f"group {answer.group_id}: kept {_list(answer.kept)}")
    out.print(f"trashed {_list(answer.trashed)}")
    if answer.trashed:
        err.print("`imgflow restore IMAGE_ID` brings a trashed image back")
    if answer.version is None:
        out.print("the group is gone: fewer than two images are left in it")


@click.command()
@click.argument("image_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per image restored.")
@click.pass_obj
@handled
def restore(obj: Context, image_ids: tuple[str, ...], as_json: bool) -> None:
    """Bring trashed images back; they are checked for duplicates again."""

    async def work() -> int:
        missing = 0
        async with obj.client() as client:
            for image_id in image_ids:
                try:
                    image = await client.restore_image(image_id)
                except NotFound:
                    err.print(f"[red]no image {image_id}[/]")
                    missing += 1
                    continue
                if as_json:
                    print(json.dumps(jsonable(image)))
                else:
                    out.print(f"restored {image.id} ({image.status})")
        return missing

    if run_async(work()):
        sys.exit(EXIT_FAILED)


async def _group(client: AsyncClient, group_id: str) -> DuplicateGroupView:
    try:
        return await client.get_duplicate_group(group_id)
    except NotFound:
        fail(
            f"no duplicate group {group_id}: it was resolved or dismissed already, or the id "
            "is wrong (`imgflow groups` lists the groups there are)",
            EXIT_FAILED,
        )


def _changed(group_id: str, version: int, now: object) -> NoReturn:
    where = f"it is at version {now} now" if now is not None else "another decision was made on it"
    fail(
        f"group {group_id} changed since version {version} ({where}): nothing was done. "
        f"Look at it again with `imgflow groups show {group_id}` and decide anew",
        EXIT_FAILED,
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _list(ids: list[UUID]) -> str:
    return ", ".join(map(str, ids)) if ids else "none"

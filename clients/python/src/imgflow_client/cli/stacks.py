"""`imgflow stacks` (list, show, resolve): reviewing the similar stacks the server keeps
(other pictures of one scene or moment: burst frames, overlapping crops, another
viewpoint), and acting on them.

Unlike a duplicate group, a stack's other members are photos, not copies: resolving
keeps a pick and trashes nothing unless `--trash` names it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, NoReturn

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
from imgflow_client.models import SimilarStackSummary, SimilarStackView, StackResolveAnswer

if TYPE_CHECKING:
    from imgflow_client.async_client import AsyncClient


@click.group(invoke_without_command=True)
@click.option("-n", "--limit", type=click.IntRange(1), help="At most this many stacks.")
@click.option(
    "--resolved/--to-review",
    default=None,
    help="Only resolved stacks, or only those still to review (default: both).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON line per stack.")
@click.pass_context
@handled
def stacks(ctx: click.Context, limit: int | None, resolved: bool | None, as_json: bool) -> None:
    """Similar stacks, the latest changed first; `show` and `resolve` act on one."""
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj

    async def work() -> list[SimilarStackSummary]:
        async with obj.client() as client:
            pages = client.similar_stacks(page_size=page_size(limit), resolved=resolved)
            return await first(pages, limit)

    listed = run_async(work())
    if as_json:
        for summary in listed:
            print(json.dumps(jsonable(summary)))
        return
    if not listed:
        out.print("no similar stacks")
        return
    table = new_table("stack", "members", "version", "suggested pick", "resolved", "updated")
    for summary in listed:
        pick = summary.suggested_pick
        table.add_row(
            str(summary.id),
            str(summary.size),
            str(summary.version),
            f"{pick.id} ({reason_words(pick.reasons[0])})",
            "yes" if summary.resolution else "no",
            summary.updated_at.isoformat(timespec="seconds"),
        )
    out.print(table)


@stacks.command()
@click.argument("stack_id")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON.")
@click.pass_obj
@handled
def show(obj: Context, stack_id: str, as_json: bool) -> None:
    """A stack's members with their duplicate groups, the evidence, and the pick."""

    async def work() -> SimilarStackView:
        async with obj.client() as client:
            return await _stack(client, stack_id)

    view = run_async(work())
    if as_json:
        print(json.dumps(jsonable(view)))
        return
    pick = view.suggested_pick
    out.print(
        f"[bold]stack {view.id}[/]  version {view.version}  {len(view.members)} members  "
        f"updated {view.updated_at.isoformat(timespec='seconds')}"
    )
    if view.resolution is not None:
        out.print(
            f"resolved {view.resolution.resolved_at.isoformat(timespec='seconds')}, "
            f"kept {view.resolution.kept or 'nothing named'}"
        )
    number = {m.id: i for i, m in enumerate(view.members, 1)}
    members = new_table("#", "image", "duplicate group", "sharpness", "pixels", "uploaded", "")
    for m in view.members:
        members.add_row(
            str(number[m.id]),
            str(m.id),
            str(m.duplicate_group_id or ""),
            "?" if m.sharpness is None else f"{m.sharpness:.0f}",
            f"{m.width}x{m.height}" if m.width else "?",
            m.created_at.isoformat(timespec="seconds"),
            "suggested pick" if m.id == pick.id else "",
        )
    out.print(members)
    evidence = new_table("pair", "relation", "basis")
    for e in view.evidence:
        evidence.add_row(
            " ".join(f"#{n}" for n in sorted((number.get(e.a, 0), number.get(e.b, 0)))),
            e.relation,
            e.basis or (e.method or ""),
        )
    out.print(evidence)
    out.print(
        f"suggested pick: #{number.get(pick.id, '?')} {pick.id}, for "
        + ", then ".join(reason_words(r) for r in pick.reasons)
    )
    out.print(
        f"to keep it (nothing is trashed): imgflow stacks resolve {view.id} --keep-suggested "
        f"--version {view.version}"
    )


@stacks.command()
@click.argument("stack_id")
@click.option("--keep", metavar="IMAGE_ID", help="Keep this member (the stack's pick).")
@click.option("--keep-suggested", is_flag=True, help="Keep the server's suggested pick.")
@click.option(
    "--trash", "trash", multiple=True, metavar="IMAGE_ID",
    help="Trash this member; only the members named are trashed.",
)  # fmt: skip
@click.option("--dismiss", is_flag=True, help="Not one scene: never stack these together again.")
@click.option(
    "--version", type=click.IntRange(1),
    help="The stack's version you decided on (`stacks show`); default: its version now.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="The API's answer.")
@click.pass_obj
@handled
def resolve(
    obj: Context,
    stack_id: str,
    keep: str | None,
    keep_suggested: bool,
    trash: tuple[str, ...],
    dismiss: bool,
    version: int | None,
    as_json: bool,
) -> None:
    """Keep a pick of a stack (trashing only the members named), or --dismiss it.

    A stack that changed since the version decided on is not touched: look at it again.
    Trashed images can be restored with `imgflow restore`.
    """
    if dismiss and (keep or trash or keep_suggested):
        fail("--dismiss takes no --keep, --trash or --keep-suggested", EXIT_USAGE)
    if keep and keep_suggested:
        fail("--keep and --keep-suggested name one pick: give one of them", EXIT_USAGE)
    if not (dismiss or keep or trash or keep_suggested):
        fail("say what to do: --keep ID, --keep-suggested, --trash ID, or --dismiss", EXIT_USAGE)
    keep_id = image_ids((keep,))[0] if keep else None
    trash_ids = image_ids(trash)

    async def work() -> StackResolveAnswer:
        async with obj.client() as client:
            view = None
            if version is None or keep_suggested:
                view = await _stack(client, stack_id)
                if version is not None and view.version != version:
                    _changed(stack_id, version, view.version)
            decided_on = version if version is not None else view.version  # type: ignore[union-attr]
            pick = view.suggested_pick.id if keep_suggested and view else keep_id
            try:
                if dismiss:
                    return await client.dismiss_similar_stack(stack_id, version=decided_on)
                return await client.resolve_similar_stack(
                    stack_id, version=decided_on, keep=pick, trash=trash_ids
                )
            except Conflict as exc:
                if exc.code != "stack-changed":
                    raise
                _changed(stack_id, decided_on, exc.problem.get("current_version"))

    answer = run_async(work())
    if as_json:
        print(json.dumps(jsonable(answer)))
        return
    if answer.dismissed:
        out.print(f"dismissed stack {answer.stack_id}: its images will not be stacked again")
        return
    out.print(f"stack {answer.stack_id}: kept {answer.kept or 'nothing named'}")
    out.print(f"trashed {', '.join(map(str, answer.trashed)) if answer.trashed else 'none'}")
    if answer.trashed:
        err.print("`imgflow restore IMAGE_ID` brings a trashed image back")
    if answer.version is None:
        out.print("the stack is gone: what is left is one duplicate group or one image")


async def _stack(client: AsyncClient, stack_id: str) -> SimilarStackView:
    try:
        return await client.get_similar_stack(stack_id)
    except NotFound:
        fail(
            f"no similar stack {stack_id}: it was dismissed or broken up, or the id is wrong "
            "(`imgflow stacks` lists the stacks there are)",
            EXIT_FAILED,
        )


def _changed(stack_id: str, version: int, now: object) -> NoReturn:
    where = f"it is at version {now} now" if now is not None else "it is gone"
    fail(
        f"stack {stack_id} changed since version {version} ({where}): nothing was done. "
        f"Look at it again with `imgflow stacks show {stack_id}` and decide anew",
        EXIT_FAILED,
    )

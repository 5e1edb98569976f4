"""The `imgflow` command: its options, and the commands on images (exit statuses: see
common.py)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from imgflow_client.cli import config
from imgflow_client.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_SERVER,
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
from imgflow_client.cli.groups import groups, restore
from imgflow_client.cli.scan import MissingPath, collect
from imgflow_client.cli.stacks import stacks
from imgflow_client.cli.webhooks import webhooks
from imgflow_client.errors import ApiError, NotFound
from imgflow_client.models import STAGES

# What only running a command needs (httpx, asyncio, SQLite) is imported when it runs:
# `imgflow --help` and `--version` start in half the CPU.
if TYPE_CHECKING:
    from imgflow_client.async_client import AsyncClient
    from imgflow_client.cli.outcomes import FileOutcome
    from imgflow_client.cli.upload_run import UploadRun
    from imgflow_client.models import Image, Usage


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", help=f"API base URL (default: ${config.URL_VARIABLE}, the config file).")
@click.option(
    "--retries",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    envvar="IMGFLOW_RETRIES",
    help="Attempts per request on connection errors, 429 and 502/503/504.",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(0),
    default=120.0,
    show_default=True,
    envvar="IMGFLOW_MAX_RETRY_WAIT",
    help="Longest Retry-After (s) honoured; a server asking for more is reported.",
)
@click.version_option(package_name="imgflow-client")
@click.pass_context
def cli(ctx: click.Context, url: str | None, retries: int, max_wait: float) -> None:
    """Upload images to imgflow and follow their processing.

    The server's URL and API key come from IMGFLOW_URL and IMGFLOW_API_KEY, or from the
    config file `imgflow login` writes.
    """
    ctx.obj = Context(url, retries, max_wait)


# -- login -------------------------------------------------------------------------------


@cli.command()
@click.pass_obj
@handled
def login(obj: Context) -> None:
    """Ask for the API key, check it, and keep it (with the URL) in the config file."""
    from imgflow_client.async_client import AsyncClient

    key = click.prompt("API key", hide_input=True).strip()
    url = obj.settings.url

    async def check() -> None:
        async with AsyncClient(url, key, retry=obj.retry) as client:
            await client.list_images(limit=1)

    run_async(check())
    path = config.save(url, key)
    err.print(f"key accepted by {url}; saved to {path}")


# -- upload ------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-r", "--recursive", is_flag=True, help="Descend into subfolders.")
@click.option(
    "-c", "--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
    help="Uploads in flight at once.",
)  # fmt: skip
@click.option("--wait", is_flag=True, help="Wait until every image is processed (events).")
@click.option("--timeout", type=click.FloatRange(0), help="With --wait: give up after this (s).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per file, then a summary.")
@click.pass_obj
@handled
def upload(
    obj: Context,
    paths: tuple[Path, ...],
    recursive: bool,
    concurrency: int,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Upload files and folders of images. Files already uploaded are not sent again;
    Ctrl-C stops cleanly, and the same command resumes."""
    try:
        files = collect(paths, recursive)
    except MissingPath as exc:
        fail(str(exc), EXIT_USAGE)
    from imgflow_client.cli.display import open_display, summary_table
    from imgflow_client.cli.state import State
    from imgflow_client.cli.upload_run import RunOptions, UploadRun

    settings = obj.settings
    settings.require_key()
    options = RunOptions(concurrency=concurrency, wait=wait, wait_timeout_s=timeout)

    def print_file(result: FileOutcome) -> None:
        print(json.dumps(result.to_json()), flush=True)

    with (
        State(config.state_dir() / "state.sqlite3", settings.account) as state,
        open_display(err, wait) as display,
    ):
        client = obj.client(
            on_retry=display.retry,
            max_connections=concurrency + 2,
            resume_store=state,
        )
        runner = UploadRun(client, state, options, display, print_file if as_json else None)
        summary = run_async(_interruptible(runner, files, client))
    if as_json:
        print(json.dumps(summary.to_json()), flush=True)
    else:
        out.print(summary_table(summary))
    if summary.fatal:
        err.print(f"[red]error:[/] {summary.fatal}")
        sys.exit(EXIT_SERVER)
    if summary.interrupted:
        err.print("interrupted: run the same command again to resume")
        sys.exit(EXIT_INTERRUPTED)
    if not summary.ok:
        sys.exit(EXIT_FAILED)


async def _interruptible(runner: UploadRun, files: list[Path], client: AsyncClient) -> Any:
    """First Ctrl-C: finish the uploads in progress and stop; second: stop now."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    main = asyncio.ensure_future(runner.run(files))

    def on_interrupt() -> None:
        if not runner.stopping:
            runner.stop()
            err.print("[yellow]stopping after the uploads in progress (Ctrl-C again: now)[/]")
        else:
            main.cancel()

    with contextlib.suppress(NotImplementedError):  # not on Windows' Proactor loop
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        return await main
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
        await client.aclose()


# -- one image ---------------------------------------------------------------------------


@cli.command()
@click.argument("image_id")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON.")
@click.pass_obj
@handled
def status(obj: Context, image_id: str, as_json: bool) -> None:
    """An image's status, each stage, its renditions and duplicates."""

    async def work() -> Image:
        async with obj.client() as client:
            return await client.get_image(image_id)

    image = run_async(work())
    if as_json:
        print(json.dumps(jsonable(image)))
        return
    size = f"{image.width}x{image.height}" if image.width else "?"
    out.print(f"[bold]{image.id}[/]  {image.status}  {image.format or '?'} {size}  "
              f"{image.byte_size:,} bytes  sha256 {image.sha256[:16]}…")  # fmt: skip
    table = new_table("stage", "status", "attempts", "error", "finished")
    for name in STAGES:
        stage = image.stages.get(name)
        if stage is not None:
            finished = stage.finished_at.isoformat(timespec="seconds") if stage.finished_at else ""
            table.add_row(name, stage.status, str(stage.attempts), stage.error or "", finished)
    out.print(table)
    if image.renditions:
        out.print("renditions: " + ", ".join(f"{r.size} px" for r in image.renditions))
    if image.duplicates:
        out.print("duplicates: " + ", ".join(f"{d.id} ({d.method})" for d in image.duplicates))
    if image.exact_duplicate_of:
        out.print(f"exact duplicate of {image.exact_duplicate_of}")
    if image.trashed_at:
        out.print(
            f"[yellow]in the trash since {image.trashed_at.isoformat(timespec='seconds')}[/]: "
            f"`imgflow restore {image.id}` brings it back"
        )


@cli.command(name="ls")
@click.option("--status", "status_", type=click.Choice(["processing", "ready", "failed"]))
@click.option("-n", "--limit", type=click.IntRange(1), help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per image.")
@click.pass_obj
@handled
def list_images(obj: Context, status_: str | None, limit: int | None, as_json: bool) -> None:
    """The images, newest first."""

    async def work() -> None:
        shown = 0
        table = new_table("id", "status", "format", "size", "bytes", "created")
        async with obj.client() as client:
            async for image in client.images(status=status_, page_size=page_size(limit)):
                if as_json:
                    print(json.dumps(jsonable(image)))
                else:
                    dims = f"{image.width}x{image.height}" if image.width else ""
                    table.add_row(
                        str(image.id),
                        image.status,
                        image.format or "",
                        dims,
                        f"{image.byte_size:,}",
                        image.created_at.isoformat(timespec="seconds"),
                    )
                shown += 1
                if limit is not None and shown >= limit:
                    break
        if not as_json:
            out.print(table)

    run_async(work())


@cli.command()
@click.argument("image_id")
@click.option("--size", type=int, help="A rendition's size (e.g. 300); default: the original.")
@click.option("-o", "--output", required=True, help="File to write, or - for standard output.")
@click.pass_obj
@handled
def get(obj: Context, image_id: str, size: int | None, output: str) -> None:
    """Download an image's original or one of its renditions."""

    async def work() -> int:
        dest: Any = sys.stdout.buffer if output == "-" else Path(output)
        async with obj.client() as client:
            if size is None:
                return await client.download_original(image_id, dest)
            return await client.download_thumbnail(image_id, size, dest)

    written = run_async(work())
    if output != "-":
        err.print(f"wrote {written:,} bytes to {output}")


@cli.command()
@click.argument("image_ids", nargs=-1, required=True)
@click.pass_obj
@handled
def rm(obj: Context, image_ids: tuple[str, ...]) -> None:
    """Delete images: their records, originals and renditions."""

    async def work() -> int:
        missing = 0
        async with obj.client() as client:
            for image_id in image_ids:
                try:
                    await client.delete_image(image_id)
                    out.print(f"deleted {image_id}")
                except NotFound:
                    err.print(f"[red]no image {image_id}[/]")
                    missing += 1
        return missing

    if run_async(work()):
        sys.exit(EXIT_FAILED)


@cli.command()
@click.argument("image_id", required=False)
@click.option("--all", "every", is_flag=True, help="Every image (with --status: those).")
@click.option("--status", "status_", type=click.Choice(["processing", "ready", "failed"]))
@click.option(
    "--stage", "stages", multiple=True, type=click.Choice(list(STAGES)),
    help="Stage to run again (repeatable); default: all.",
)  # fmt: skip
@click.pass_obj
@handled
def reprocess(
    obj: Context, image_id: str | None, every: bool, status_: str | None, stages: tuple[str, ...]
) -> None:
    """Run an image's stages again, or every image's with --all."""
    if bool(image_id) == every:
        fail("give an IMAGE_ID or --all", EXIT_USAGE)

    async def work() -> tuple[int, list[str]]:
        done, problems = 0, []
        async with obj.client() as client:
            if image_id:
                targets: Any = [image_id]
            else:
                # No bulk endpoint yet: the listing, one request per image.
                targets = [str(i.id) async for i in client.images(status=status_)]
            for target in targets:
                try:
                    await client.reprocess(target, list(stages) or None)
                    done += 1
                except ApiError as exc:
                    if image_id or exc.status >= 500 or exc.status == 401:
                        raise
                    problems.append(f"{target}: {exc.code}")
        return done, problems

    done, problems = run_async(work())
    out.print(f"reprocessing {done} image(s)" + (f"; {len(problems)} refused" if problems else ""))
    for line in problems:
        err.print(f"  {line}")
    if problems:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.option("--image", "image_id", help="Only this image, until it has finished.")
@click.option("--from", "last_event_id", help="Resume after this event id (Last-Event-ID).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per event.")
@click.pass_obj
@handled
def watch(obj: Context, image_id: str | None, last_event_id: str | None, as_json: bool) -> None:
    """Print events live: every image and stage change (Ctrl-C stops)."""

    async def work() -> None:
        async with obj.client() as client:
            stream = (
                client.image_events(image_id)
                if image_id
                else client.events(last_event_id=last_event_id)
            )
            async for event in stream:
                if as_json:
                    print(
                        json.dumps({"id": event.id, "event": event.event, **event.data}), flush=True
                    )
                    continue
                d = event.data
                if event.event == "open":
                    out.print(f"[dim]listening (after event {d.get('last_event_id')})[/]")
                elif event.event == "state":
                    stages = ", ".join(f"{k} {v['status']}" for k, v in d["stages"].items())
                    out.print(f"{d['image_id']}  {d['status']}  ({stages})")
                else:
                    where = f" {d['stage']}" if d.get("stage") else ""
                    error = f"  [red]{d['error']}[/]" if d.get("error") else ""
                    out.print(f"{d.get('at', '')}  {d.get('image_id')}  {event.type}{where}{error}")

    with contextlib.suppress(KeyboardInterrupt):
        run_async(work())


@cli.command()
@click.argument("image_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@handled
def duplicates(obj: Context, image_id: str | None, as_json: bool) -> None:
    """An image's duplicates and group; without ID, every pair of duplicates."""

    async def one(client: AsyncClient, target: str) -> Any:
        return await client.duplicates(target)

    import asyncio

    async def work() -> list[Any]:
        async with obj.client() as client:
            if image_id:
                return [await one(client, image_id)]
            ids = [str(i.id) async for i in client.images()]
            slots = asyncio.Semaphore(8)

            async def bounded(target: str) -> Any:
                async with slots:
                    return await one(client, target)

            return list(await asyncio.gather(*(bounded(i) for i in ids)))

    views = run_async(work())
    if as_json:
        for view in views:
            print(json.dumps(jsonable(view)))
        return
    table = new_table("image", "duplicate", "method", "score")
    seen: set[frozenset[str]] = set()
    for view in views:
        for d in view.duplicates:
            pair = frozenset((str(view.id), str(d.id)))
            if pair not in seen:
                seen.add(pair)
                table.add_row(str(view.id), str(d.id), d.method, f"{d.score:.3f}")
    out.print(table)
    if image_id and views:
        out.print(f"group: {len(views[0].group)} image(s)")


# -- the tenant ------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="The API's JSON.")
@click.pass_obj
@handled
def usage(obj: Context, as_json: bool) -> None:
    """What the tenant stores and has waiting, beside its limits and quotas."""

    async def work() -> Usage:
        async with obj.client() as client:
            return await client.usage()

    used = run_async(work())
    if as_json:
        print(json.dumps(jsonable(used)))
        return
    limits = used.limits
    waiting = sum(used.queued_jobs.values())
    by_kind = ", ".join(f"{kind} {n:,}" for kind, n in sorted(used.queued_jobs.items()))
    table = new_table("", "now", "limit")
    rows = [
        ("images stored", f"{used.images:,}", limits.max_images),
        ("bytes stored", f"{used.bytes:,}", limits.max_bytes),
        ("jobs waiting", f"{waiting:,} ({by_kind})" if by_kind else "0", limits.max_queued_jobs),
        ("uploads in progress", f"{used.uploads_in_progress:,}", limits.upload_concurrency),
    ]
    for name, now, limit in rows:
        table.add_row(name, now, "none" if limit is None else f"{limit:,}")
    if limits.upload_rate_per_s is None:
        rate = "none"
    else:
        rate = f"{limits.upload_rate_per_s:g}/s, bursts of {limits.upload_burst or 1}"
    table.add_row("upload rate", "", rate)
    table.add_row("weight (share of the workers)", "", str(limits.weight or 1))
    out.print(f"[bold]tenant {used.tenant}[/]")
    out.print(table)


cli.add_command(groups)
cli.add_command(restore)
cli.add_command(stacks)
cli.add_command(webhooks)


def main() -> None:
    cli(prog_name="imgflow")


if __name__ == "__main__":
    main()

"""Progress bars on standard error (bytes, files, processing) and the summary table.

Bars are drawn only on a terminal; piped or redirected, the command prints its notes and
summary alone, so logs and ``--json`` output stay clean. rich.progress and rich.table
are imported only when drawn: a piped ``--json`` run needs neither (start-up CPU).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console

from imgflow_client.cli.outcomes import FileOutcome, RunSummary
from imgflow_client.cli.upload_run import Display
from imgflow_client.retry import RetryNotice

if TYPE_CHECKING:
    from rich.progress import ProgressColumn, Task, TaskID
    from rich.table import Table


def open_display(console: Console, wait: bool) -> NotesDisplay:
    """Bars on a terminal; elsewhere only the notes."""
    return ProgressDisplay(console, wait) if console.is_terminal else NotesDisplay(console)


class NotesDisplay(Display):
    """Notes (retries, recovery) on ``console``, and no bars."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._last_note = ("", 0.0)

    def __enter__(self) -> NotesDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def note(self, text: str) -> None:
        self.console.print(text, style="yellow", highlight=False)

    def retry(self, notice: RetryNotice) -> None:
        """One line per kind of trouble per few seconds: 16 workers hit the same 503."""
        what = f"{notice.status} {notice.code}" if notice.status else str(notice.error)
        now = time.monotonic()
        if self._last_note[0] == what and now - self._last_note[1] < 5:
            return
        self._last_note = (what, now)
        self.note(f"server answered {what}; retrying in {notice.delay_s:.1f} s")


class ProgressDisplay(NotesDisplay):
    """Three bars, each in its own unit: bytes sent, files done, images processed."""

    def __init__(self, console: Console, wait: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        super().__init__(console)
        self.wait = wait
        amount, rate = _unit_columns()
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            amount,
            rate,
            TimeElapsedColumn(),
            console=console,
            transient=False,
            # Each redraw of the bars costs ~1.5 ms of CPU: at rich's default 10 a second,
            # ~0.08 ms per upload at 175 uploads/s, CPU a local server needs. 4 a second
            # still reads as live.
            refresh_per_second=4,
        )
        self._bytes: TaskID | None = None
        self._files: TaskID | None = None
        self._processing: TaskID | None = None

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, files: int, total_bytes: int) -> None:
        self._bytes = self.progress.add_task("sent", total=total_bytes, unit="bytes")
        self._files = self.progress.add_task("files", total=files, unit="files")
        if self.wait:
            self._processing = self.progress.add_task("processed", total=0, unit="images")

    def file_done(self, result: FileOutcome) -> None:
        if self._files is not None:
            self.progress.advance(self._files)
        if result.outcome in ("failed", "skipped"):
            self.progress.console.print(f"[dim]{result.outcome}:[/] {result.path}: {result.reason}")

    def sent(self, n: int) -> None:
        if self._bytes is not None:
            self.progress.advance(self._bytes, n)

    def fewer_bytes(self, n: int) -> None:
        """A file that will not be sent: its bytes leave the total."""
        if self._bytes is not None and n:
            task = self.progress.tasks[self._bytes]
            self.progress.update(self._bytes, total=max(0, (task.total or 0) - n))

    def processing(self, finished: int, tracked: int) -> None:
        if self._processing is not None:
            self.progress.update(self._processing, completed=finished, total=tracked)

    def note(self, text: str) -> None:
        self.progress.console.print(text, style="yellow", highlight=False)


def _unit_columns() -> tuple[ProgressColumn, ProgressColumn]:
    """The amount and the rate of a bar in its task's ``unit``: bytes as bytes (kB, MB),
    files and images as counts."""
    from rich.progress import DownloadColumn, ProgressColumn, TransferSpeedColumn
    from rich.text import Text

    download, speed = DownloadColumn(), TransferSpeedColumn()

    class Amount(ProgressColumn):
        def render(self, task: Task) -> Text:
            unit = task.fields.get("unit", "")
            if unit == "bytes":
                return download.render(task)
            total = "?" if task.total is None else f"{task.total:.0f}"
            return Text(f"{task.completed:.0f}/{total} {unit}", style="progress.download")

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            unit = task.fields.get("unit", "")
            if unit == "bytes":
                return speed.render(task)
            rate = task.finished_speed or task.speed
            shown = "?" if rate is None else f"{rate:.1f}"
            return Text(f"{shown} {unit}/s", style="progress.data.speed")

    return Amount(), Rate()


def summary_table(summary: RunSummary) -> Table:
    from rich.table import Table

    table = Table(title="imgflow upload", show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("files", justify="right")
    table.add_column("details")
    rows = [
        ("uploaded", summary.count("uploaded"), _bytes(summary.bytes_sent) + " sent"),
        ("already there", summary.count("existing"), "not sent again"),
        ("skipped", summary.count("skipped"), _reasons(summary, "skipped")),
        ("failed", summary.count("failed"), _reasons(summary, "failed")),
    ]
    if summary.not_attempted:
        rows.append(("not attempted", summary.not_attempted, "rerun to resume"))
    if summary.processing is not None:
        p = summary.processing
        rows += [
            ("ready", p.ready, "images processed"),
            ("processing failed", p.failed, _processing_failures(summary)),
            ("near-duplicates", len(p.near_duplicates), "images like another one"),
        ]
        if p.not_finished:
            rows.append(("still processing", p.not_finished, "not finished when the wait ended"))
    for outcome, count, details in rows:
        table.add_row(outcome, str(count), details)
    table.caption = f"{summary.seconds:.1f} s" + (" (interrupted)" if summary.interrupted else "")
    return table


def _reasons(summary: RunSummary, outcome: str) -> str:
    return _first_lines(
        [f"{f.path.name}: {f.reason}" for f in summary.files if f.outcome == outcome]
    )


def _processing_failures(summary: RunSummary) -> str:
    """Each image that failed processing, by the file it came from, and why."""
    assert summary.processing is not None
    names = {f.image_id: f.path.name for f in summary.files if f.image_id}
    return _first_lines(
        [
            f"{names.get(image_id, f'image {image_id}')}: {reason}"
            for image_id, reason in summary.processing.failures.items()
        ]
    )


def _first_lines(lines: list[str]) -> str:
    shown = lines[:10]
    if len(lines) > 10:
        shown.append(f"... and {len(lines) - 10} more (--json lists them all)")
    return "\n".join(shown)


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"

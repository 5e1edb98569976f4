"""What `imgflow upload` shows: bars in their own units, and a summary whose every
failure row names a file and a reason in words."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from rich.console import Console

from imgflow_client.cli.display import ProgressDisplay, summary_table
from imgflow_client.cli.outcomes import FileOutcome, Processing, RunSummary
from imgflow_client.errors import ConnectionFailed


def _console() -> Console:
    return Console(file=io.StringIO(), width=160, force_terminal=True, color_system=None)


def _text(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_each_bar_counts_in_its_own_unit() -> None:
    console = _console()
    with ProgressDisplay(console, wait=True) as display:
        display.start(files=3, total_bytes=3_000_000)
        display.sent(1_500_000)
        display.file_done(FileOutcome(Path("a.jpg"), "uploaded", image_id="i1"))
        display.processing(finished=1, tracked=2)
    bars = _console()
    bars.print(display.progress.make_tasks_table(display.progress.tasks))
    lines = {line.split()[0]: line for line in _text(bars).splitlines() if line.strip()}

    assert "1.5/3.0 MB" in lines["sent"]
    assert "1/3 files" in lines["files"] and "files/s" in lines["files"]
    assert "1/2 images" in lines["processed"] and "images/s" in lines["processed"]
    for bar in ("files", "processed"):
        assert "bytes" not in lines[bar] and "MB" not in lines[bar], lines[bar]


def test_every_failure_row_names_a_file_and_a_reason_in_words() -> None:
    dropped = ConnectionFailed("http://imgflow", httpx.ReadError("Connection reset by peer"))
    files = [
        FileOutcome(Path("/photos/cut.jpg"), "failed", f"not sent: {dropped}"),
        FileOutcome(Path("/photos/odd.png"), "uploaded", image_id="img-odd"),
        FileOutcome(Path("/photos/notes.txt"), "skipped", "not an image (unknown format)"),
    ]
    processing = Processing(ready=0, failed=1, failures={"img-odd": "thumbnails: cut short"})
    summary = RunSummary(files, candidates=3, seconds=1.0, bytes_sent=10, processing=processing)
    console = _console()

    console.print(summary_table(summary))
    shown = _text(console)

    assert "cut.jpg: not sent: cannot reach http://imgflow: the connection was dropped" in shown
    assert "odd.png: thumbnails: cut short" in shown
    assert "notes.txt: not an image" in shown
    assert " object at 0x" not in shown and "ReadError" not in shown


def test_a_transport_error_without_a_message_still_reads_as_words() -> None:
    assert str(ConnectionFailed("http://x", httpx.ConnectError(""))) == (
        "cannot reach http://x: the connection was refused or the host is unreachable"
    )

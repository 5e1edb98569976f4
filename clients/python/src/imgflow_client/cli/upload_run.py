"""`imgflow upload`: read and hash each file, skip what the server has, send the rest N at
a time; with ``--wait``, follow processing on the event stream until the images finish.

A file is never sent twice: its SHA-256 (cached by path, size and mtime) is looked up in
the state file first, files with equal bytes in one run share one upload, and every
upload's Idempotency-Key is derived from the digest. Uploads sent but never answered (a
run killed outright) are looked for on the server before the next run sends anything.
The first Ctrl-C lets the uploads in progress finish and records them; a second one
abandons them (the next run finds them as above).
"""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from imgflow_client.async_client import AsyncClient
from imgflow_client.cli.outcomes import FileOutcome, RunSummary
from imgflow_client.cli.processing import ProcessingWatch
from imgflow_client.cli.state import State
from imgflow_client.errors import (
    ApiError,
    ConnectionFailed,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from imgflow_client.files import HEAD_BYTES, sha256_bytes, sha256_file, sniff_format

# Files up to this are read once, whole: hashed and sent from memory.
READ_WHOLE_MAX = 8 * 1024 * 1024
# Files up to this are read and hashed on the event loop (well under a millisecond).
READ_INLINE_MAX = 1024 * 1024
# Recovery looks at images created from this long before a lost upload was sent (the
# server's clock may differ from ours).
CLOCK_MARGIN = timedelta(hours=1)


class Fatal(Exception):
    """Every further upload would fail the same way: stop the run."""


@dataclass
class RunOptions:
    concurrency: int = 4
    wait: bool = False
    wait_timeout_s: float | None = None


class Display:
    """What the run tells as it goes; the command draws progress bars from it."""

    def start(self, files: int, total_bytes: int) -> None: ...
    def file_done(self, result: FileOutcome) -> None: ...
    def sent(self, n: int) -> None: ...
    def fewer_bytes(self, n: int) -> None: ...
    def processing(self, finished: int, tracked: int) -> None: ...
    def note(self, text: str) -> None: ...


class UploadRun:
    def __init__(
        self,
        client: AsyncClient,
        state: State,
        options: RunOptions,
        display: Display,
        on_file: Callable[[FileOutcome], None] | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.options = options
        self.display = display
        self.on_file = on_file
        self.results: list[FileOutcome] = []
        self.bytes_sent = 0
        self.stopping = False
        self.fatal: str | None = None
        self._by_sha: dict[str, asyncio.Future[FileOutcome]] = {}
        self._watch: ProcessingWatch | None = None

    def stop(self) -> None:
        """Take no new file; the uploads in progress finish."""
        self.stopping = True

    async def run(self, paths: Sequence[Path]) -> RunSummary:
        started = time.monotonic()
        sizes = {p: _size(p) for p in paths}
        self.display.start(len(paths), sum(sizes.values()))
        try:
            await self._recover_lost_answers()
            if self.options.wait:
                self._watch = ProcessingWatch(self.client, self.display.processing)
                await self._watch.start()
            pending = iter(paths)
            workers = [
                asyncio.create_task(self._worker(pending, sizes))
                for _ in range(max(1, self.options.concurrency))
            ]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
            processing = None
            if self._watch is not None:
                self._watch.uploads_done()
                if not self.stopping and self.fatal is None:
                    processing = await self._watch.wait(self.options.wait_timeout_s)
                else:
                    processing = self._watch.result
                    processing.not_finished = len(self._watch._waiting)
        except Fatal as exc:
            self.fatal = str(exc)
            processing = self._watch.result if self._watch else None
        except asyncio.CancelledError:
            self.stopping = True
            processing = self._watch.result if self._watch else None
        finally:
            if self._watch is not None:
                await self._watch.stop()
        return RunSummary(
            self.results,
            candidates=len(paths),
            seconds=time.monotonic() - started,
            bytes_sent=self.bytes_sent,
            interrupted=self.stopping,
            fatal=self.fatal,
            processing=processing,
        )

    # -- per file ----------------------------------------------------------------------

    async def _worker(self, pending: object, sizes: dict[Path, int]) -> None:
        for path in pending:  # type: ignore[attr-defined]
            if self.stopping or self.fatal:
                return
            try:
                result = await self._one(path)
            except Fatal as exc:
                self.fatal = self.fatal or str(exc)
                return
            if result.outcome != "uploaded":
                self.display.fewer_bytes(sizes.get(path, 0))
            self.results.append(result)
            self.display.file_done(result)
            if self.on_file is not None:
                self.on_file(result)

    async def _one(self, path: Path) -> FileOutcome:
        try:
            info = path.stat()  # noqa: ASYNC240 (one system call: a thread hop costs more)
        except OSError as exc:
            return FileOutcome(path, "failed", f"unreadable: {exc.strerror or exc}")
        if not stat.S_ISREG(info.st_mode):
            return FileOutcome(path, "skipped", "not a regular file")
        if info.st_size == 0:
            return FileOutcome(path, "skipped", "empty file")
        size = info.st_size
        data: bytes | None = None
        sha = self.state.cached_sha256(path, size, info.st_mtime_ns)
        if sha is None:
            try:
                if size <= READ_INLINE_MAX:  # a thread hop costs more than the read
                    data, sha = _read_image(path, size)
                else:
                    data, sha = await asyncio.to_thread(_read_image, path, size)
            except OSError as exc:
                return FileOutcome(path, "failed", f"unreadable: {exc.strerror or exc}")
            if sha is None:
                return FileOutcome(path, "skipped", "not an image (unknown format)")
            self.state.remember_sha256(path, size, info.st_mtime_ns, sha)

        first = self._by_sha.get(sha)
        if first is not None:  # the same bytes under another name, in this run
            other = await first
            if other.outcome in ("uploaded", "existing"):
                return FileOutcome(
                    path, "existing", f"same bytes as {other.path}", other.image_id, sha, size
                )
            return FileOutcome(path, "failed", f"same bytes as {other.path}: {other.reason}")
        future: asyncio.Future[FileOutcome] = asyncio.get_running_loop().create_future()
        self._by_sha[sha] = future
        try:
            result = await self._send_unless_known(path, sha, size, data)
        except BaseException as exc:
            future.set_result(FileOutcome(path, "failed", f"not sent: {exc}"))
            raise
        future.set_result(result)
        return result

    async def _send_unless_known(
        self, path: Path, sha: str, size: int, data: bytes | None
    ) -> FileOutcome:
        known = self.state.uploaded_image(sha)
        if known is not None:
            self._track(known, None, uploaded_now=False)
            return FileOutcome(path, "existing", "uploaded before", known, sha, size)
        self.state.mark_inflight(sha)

        def progress(n: int) -> None:
            self.bytes_sent += n
            self.display.sent(n)

        try:
            accepted = await self.client.upload(
                data if data is not None else path, sha256=sha, on_progress=progress
            )
        except (Unauthorized, Unavailable, RateLimited) as exc:
            self.state.clear_inflight(sha)  # the server refused it: nothing stored
            raise Fatal(_fatal_text(exc)) from exc
        except ConnectionFailed as exc:
            # Stays in flight: the server may have it; the next run looks.
            raise Fatal(str(exc)) from exc
        except ApiError as exc:
            self.state.clear_inflight(sha)
            return FileOutcome(path, "failed", f"{exc.code}: {exc.detail or exc.title}", sha256=sha)
        except OSError as exc:
            self.state.clear_inflight(sha)
            return FileOutcome(path, "failed", f"unreadable: {exc.strerror or exc}", sha256=sha)
        image_id = str(accepted.id)
        self.state.record_uploaded(sha, image_id)
        finished = all(s in ("done", "failed") for s in accepted.stages.values())
        self._track(image_id, accepted.status if finished else "processing", accepted.created)
        if accepted.created:
            return FileOutcome(path, "uploaded", None, image_id, sha, size)
        reason = f"same bytes as image {accepted.duplicate_of}" if accepted.duplicate_of else None
        return FileOutcome(path, "existing", reason, image_id, sha, size)

    def _track(self, image_id: str, status: str | None, uploaded_now: bool) -> None:
        if self._watch is not None:
            self._watch.track(image_id, status, uploaded_now)

    async def _recover_lost_answers(self) -> None:
        """Uploads a killed run sent without hearing back: find the ones the server
        stored (by SHA-256, among images created since), so they are not sent again."""
        lost = self.state.inflight()
        if not lost:
            return
        since = datetime.fromtimestamp(min(lost.values()), UTC) - CLOCK_MARGIN
        self.display.note(f"looking for {len(lost)} upload(s) an earlier run did not hear back")
        try:
            async for image in self.client.images(created_after=since):
                if image.sha256 in lost:
                    self.state.record_uploaded(image.sha256, str(image.id))
                    del lost[image.sha256]
                    if not lost:
                        break
        except (Unauthorized, Unavailable, RateLimited) as exc:
            raise Fatal(_fatal_text(exc)) from exc
        except ConnectionFailed as exc:
            raise Fatal(str(exc)) from exc
        for sha in lost:  # not there: the upload never arrived; send it again
            self.state.clear_inflight(sha)


def _read_image(path: Path, size: int) -> tuple[bytes | None, str | None]:
    """(the bytes when small enough to send from memory, the SHA-256), or (None, None)
    when the file does not start like an image."""
    if size > READ_WHOLE_MAX:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
        return (None, sha256_file(path)) if sniff_format(head) else (None, None)
    data = path.read_bytes()
    return (data, sha256_bytes(data)) if sniff_format(data[:HEAD_BYTES]) else (None, None)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _fatal_text(exc: ApiError) -> str:
    if isinstance(exc, Unauthorized):
        return (
            f"the server refused the API key ({exc.status} {exc.code}): set IMGFLOW_API_KEY "
            "or run `imgflow login`"
        )
    if isinstance(exc, Unavailable | RateLimited):
        after = f"; it asked to retry after {exc.retry_after_s:.0f} s" if exc.retry_after_s else ""
        return (
            f"the server is over capacity or unavailable ({exc.status} {exc.code}: "
            f"{exc.detail}) and kept refusing after retries{after}; run the same command "
            "later to resume"
        )
    return str(exc)

"""``--wait``: follow the tenant's event stream until every image of the run has finished.

The stream is opened, and its ``open`` message received, before the first upload, so no
outcome can slip between an upload's answer and listening; outcomes of images not yet
tracked are kept until they are. Images known finished from their upload's answer, or
read once when this run did not upload them, need no event. After a reconnect the
server replays from Last-Event-ID, but an event committed just before the resume point
can be missed (docs/api/events-and-webhooks.md), so every image still waited for is read
once more.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from imgflow_client.async_client import TERMINAL_IMAGE_EVENTS, AsyncClient
from imgflow_client.cli.outcomes import Processing
from imgflow_client.errors import NotFound
from imgflow_client.models import Image, ServerEvent

OPEN_TIMEOUT_S = 30.0
# Reads of images (to look for near-duplicates, or after a reconnect) at once.
READS_AT_ONCE = 8


class ProcessingWatch:
    def __init__(
        self,
        client: AsyncClient,
        on_change: Callable[[int, int], None],
        near_duplicates: bool = True,
    ) -> None:
        self.client = client
        self.on_change = on_change  # (finished, tracked)
        self.near_duplicates = near_duplicates
        self.result = Processing()
        self._outcomes: dict[str, str] = {}  # image id -> terminal event type, from the stream
        self._tracked: set[str] = set()
        self._waiting: set[str] = set()
        self._inspect: set[str] = set()  # uploaded by this run: look for near-duplicates
        self._opened = asyncio.Event()
        self._settled = asyncio.Event()
        self._reads = asyncio.Semaphore(READS_AT_ONCE)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stream: asyncio.Task[None] | None = None
        self._stream_error: BaseException | None = None
        self._uploads_done = False

    async def start(self) -> None:
        self._stream = asyncio.create_task(self._follow())
        opened = asyncio.create_task(self._opened.wait())
        await asyncio.wait(
            {opened, self._stream}, timeout=OPEN_TIMEOUT_S, return_when="FIRST_COMPLETED"
        )
        if not self._opened.is_set():
            opened.cancel()
            await self.stop()
            if self._stream_error is not None:
                raise self._stream_error
            raise TimeoutError("the event stream did not open")

    async def stop(self) -> None:
        for task in [self._stream, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._stream, *self._tasks]:
            if task is not None:
                with contextlib.suppress(BaseException):
                    await task

    def track(self, image_id: str, finished_status: str | None, uploaded_now: bool) -> None:
        """Wait for ``image_id``; ``finished_status`` is ``ready``/``failed`` when the
        upload's answer already showed every stage finished, None when unknown."""
        if image_id in self._tracked:
            return
        self._tracked.add(image_id)
        if uploaded_now and self.near_duplicates:
            self._inspect.add(image_id)
        if image_id in self._outcomes:
            self._finish(image_id, self._outcomes[image_id])
        elif finished_status in ("ready", "failed"):
            self._finish(image_id, f"image.{finished_status}")
        else:
            self._waiting.add(image_id)
            if finished_status is None:
                self._spawn(self._read(image_id))
        self._changed()

    async def wait(self, timeout_s: float | None = None) -> Processing:
        """Until every tracked image has finished (or the timeout); then the result."""
        self._check_settled()
        waiter = asyncio.create_task(self._settled.wait())
        pending = {waiter} | ({self._stream} if self._stream else set())
        done, _ = await asyncio.wait(pending, timeout=timeout_s, return_when="FIRST_COMPLETED")
        waiter.cancel()
        if self._stream in done and self._stream_error is not None:
            raise self._stream_error
        # Reads of finished images (near-duplicates) still going: let them end.
        while self._tasks and self._settled.is_set():
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self.result.not_finished = len(self._waiting)
        return self.result

    # -- inside ------------------------------------------------------------------------

    async def _follow(self) -> None:
        try:
            async for event in self.client.events():
                self._on_event(event)
        except Exception as exc:
            self._stream_error = exc

    def _on_event(self, event: ServerEvent) -> None:
        if event.event == "open":
            if self._opened.is_set():  # reconnected: read what we still wait for
                for image_id in list(self._waiting):
                    self._spawn(self._read(image_id))
            self._opened.set()
            return
        if event.type not in TERMINAL_IMAGE_EVENTS or event.image_id is None:
            return
        self._outcomes[event.image_id] = event.type
        if event.image_id in self._waiting:
            self._finish(event.image_id, event.type)
            self._changed()

    async def _read(self, image_id: str) -> None:
        async with self._reads:
            try:
                image = await self.client.get_image(image_id)
            except NotFound:
                outcome = "image.deleted"
            else:
                if not image.finished:
                    return
                outcome = f"image.{image.status}"
        if image_id in self._waiting:
            self._finish(image_id, outcome)
            self._changed()

    def _finish(self, image_id: str, event_type: str) -> None:
        self._waiting.discard(image_id)
        if event_type == "image.ready":
            self.result.ready += 1
        elif event_type == "image.failed":
            self.result.failed += 1
        else:
            self.result.deleted += 1
        if event_type != "image.deleted" and (
            image_id in self._inspect or event_type == "image.failed"
        ):
            self._spawn(self._inspect_image(image_id))

    async def _inspect_image(self, image_id: str) -> None:
        async with self._reads:
            try:
                image = await self.client.get_image(image_id)
            except NotFound:
                return
        self._note(image)

    def _note(self, image: Image) -> None:
        image_id = str(image.id)
        near = [str(d.id) for d in image.duplicates if not d.is_exact]
        if near and image_id in self._inspect:
            self.result.near_duplicates[image_id] = near
        errors = [f"{name}: {s.error}" for name, s in image.stages.items() if s.error]
        if image.status == "failed":
            self.result.failures[image_id] = "; ".join(errors) or "failed"

    def _spawn(self, work: object) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _changed(self) -> None:
        self.on_change(len(self._tracked) - len(self._waiting), len(self._tracked))
        self._check_settled()

    def uploads_done(self) -> None:
        """No more images will be tracked: the wait may end once they have finished."""
        self._uploads_done = True
        self._check_settled()

    def _check_settled(self) -> None:
        if self._uploads_done and not self._waiting:
            self._settled.set()

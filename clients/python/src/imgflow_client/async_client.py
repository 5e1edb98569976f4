"""AsyncClient: every public operation of the imgflow API as coroutines and async iterators.

Every request goes through one retry loop (retry.py). Uploads carry an Idempotency-Key
derived from the bytes' SHA-256; files above ``presigned_above`` go straight to storage
through a presigned upload (one PUT, or parts in parallel), resumable (resume.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar
from uuid import UUID

import httpx

from imgflow_client import routes
from imgflow_client._convert import decode
from imgflow_client.body import WHOLE_BELOW, Body, Progress
from imgflow_client.cursor_pages import follow
from imgflow_client.errors import ApiError, ConnectionFailed, describe
from imgflow_client.files import derive_idempotency_key, sha256_bytes, sha256_file
from imgflow_client.models import (
    Delivery,
    DuplicateGroupPage,
    DuplicateGroupSummary,
    DuplicateGroupView,
    Duplicates,
    Image,
    ImagePage,
    ImageSummary,
    ReprocessAccepted,
    ResolveAnswer,
    ResolveRequest,
    ServerEvent,
    SimilarStackPage,
    SimilarStackSummary,
    SimilarStackView,
    StackResolveAnswer,
    StackResolveRequest,
    UploadAccepted,
    UploadStatus,
    UploadTicket,
    Usage,
    Webhook,
    WebhookCreated,
    WebhookEnabled,
)
from imgflow_client.resume import MemoryResumeStore, PendingUpload, ResumeStore
from imgflow_client.retry import RetryNotice, RetryPolicy, parse_retry_after
from imgflow_client.routes import Route
from imgflow_client.sse import SseParser

T = TypeVar("T")
Source = bytes | str | os.PathLike[str]
Destination = str | os.PathLike[str] | IO[bytes]

# The server takes direct uploads up to 50 MiB by default; above this, presigned ones.
DEFAULT_PRESIGNED_ABOVE = 32 * 1024 * 1024
IDEMPOTENCY_HEADER = "Idempotency-Key"
TERMINAL_IMAGE_EVENTS = frozenset({"image.ready", "image.failed", "image.deleted"})
# A ticket this close to expiring is not worth resuming: its URLs may lapse mid-PUT.
RESUME_MARGIN = timedelta(minutes=5)
USER_AGENT = "imgflow-client/0.1"


class AsyncClient:
    """``async with AsyncClient(url, api_key) as client: ...``

    ``on_retry`` is told about every retry before its wait (the command shows them);
    ``resume_store`` remembers presigned uploads in progress (default: in memory).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        retry: RetryPolicy | None = None,
        timeout_s: float = 60.0,
        stream_read_timeout_s: float = 90.0,
        max_connections: int = 16,
        presigned_above: int = DEFAULT_PRESIGNED_ABOVE,
        part_concurrency: int = 4,
        resume_store: ResumeStore | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.presigned_above = presigned_above
        self.part_concurrency = part_concurrency
        self.resume_store: ResumeStore = resume_store or MemoryResumeStore()
        self.on_retry = on_retry
        self._stream_timeout = httpx.Timeout(timeout_s, read=stream_read_timeout_s)
        headers = {"User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self._api = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            limits=limits,
            verify=_tls_for(self.base_url),
        )
        self._timeout, self._limits = timeout, limits
        self._storage_client: httpx.AsyncClient | None = None

    @property
    def _storage(self) -> httpx.AsyncClient:
        """For presigned storage URLs, which carry their own signature: never the API key.
        Made on first use: most runs never need it, and each client loads the CA
        certificates anew (tens of ms of start-up CPU)."""
        if self._storage_client is None:
            self._storage_client = httpx.AsyncClient(
                headers={"User-Agent": USER_AGENT}, timeout=self._timeout, limits=self._limits
            )
        return self._storage_client

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._api.aclose()
        if self._storage_client is not None:
            await self._storage_client.aclose()

    # -- images ------------------------------------------------------------------------

    async def upload(
        self,
        source: Source,
        *,
        sha256: str | None = None,
        idempotency_key: str | None = None,
        on_progress: Progress | None = None,
    ) -> UploadAccepted:
        """Upload an image (bytes or a file path). ``created`` on the answer tells a new
        image (201) from one whose bytes were there already (200).

        ``sha256`` (hex) spares hashing again when the caller knows it; the default
        Idempotency-Key is derived from it, so retrying or rerunning never makes a
        second image.
        """
        body = Body.of(source if isinstance(source, bytes) else Path(source))
        if sha256 is None:
            sha256 = (
                sha256_bytes(body.data)
                if body.data is not None
                else await asyncio.to_thread(sha256_file, body.path)  # type: ignore[arg-type]
            )
        key = idempotency_key or derive_idempotency_key(sha256)
        if body.size > self.presigned_above:
            return await self._upload_presigned(body, sha256, key, on_progress)
        return await self._upload_direct(body, key, on_progress)

    async def _upload_direct(
        self, body: Body, key: str | None, on_progress: Progress | None
    ) -> UploadAccepted:
        headers = {"Content-Type": body.content_type()}
        if key is not None:
            headers[IDEMPOTENCY_HEADER] = key
        whole = body.size <= WHOLE_BELOW

        def content() -> bytes | AsyncIterator[bytes]:
            if whole:
                return body.read()
            headers["Content-Length"] = str(body.size)
            return body.chunks(0, body.size, on_progress)

        try:
            response = await self._call(
                routes.UPLOAD_IMAGE, content=content, headers=headers, idempotent=True
            )
        except ApiError as exc:
            if exc.code != "image-deleted" or key is None:
                raise
            # The key is remembered (24 h) for an image since deleted. Without a key the
            # server still stores identical bytes once, so no second image can appear.
            return await self._upload_direct(body, None, on_progress)
        if whole and on_progress:
            on_progress(body.size)
        return _accepted(response)

    async def _upload_presigned(
        self, body: Body, sha256: str, key: str, on_progress: Progress | None
    ) -> UploadAccepted:
        pending = self.resume_store.load(sha256)
        if pending is not None and not await self._resumable(pending):
            self.resume_store.forget(sha256)
            pending = None
        if pending is None:
            ticket_json = (await self.start_upload(body.size, sha256, body.content_type())).json()
            pending = PendingUpload(ticket_json)
            self.resume_store.save(sha256, pending)
        for resend in (False, True):
            await self._send_parts(body, sha256, pending, on_progress)
            ticket = decode(UploadTicket, pending.ticket)
            try:
                accepted = await self.complete_upload(ticket.id, idempotency_key=key)
            except ApiError as exc:
                if exc.code == "upload-incomplete" and not resend:
                    pending.parts_done.clear()  # storage lacks a part we thought sent
                    self.resume_store.save(sha256, pending)
                    continue
                if exc.code in ("upload-expired", "upload-failed", "upload-not-found"):
                    self.resume_store.forget(sha256)
                raise
            self.resume_store.forget(sha256)
            return accepted
        raise AssertionError("unreachable")

    async def _resumable(self, pending: PendingUpload) -> bool:
        ticket = decode(UploadTicket, pending.ticket)
        if ticket.expires_at - RESUME_MARGIN <= datetime.now(UTC):
            return False
        try:
            status = await self.get_upload(ticket.id)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return status.state in ("pending", "completed")

    async def _send_parts(
        self, body: Body, sha256: str, pending: PendingUpload, on_progress: Progress | None
    ) -> None:
        ticket = decode(UploadTicket, pending.ticket)
        if ticket.url is not None:
            if 1 not in pending.parts_done:
                await self._put(ticket.url, body, 0, body.size, on_progress)
                pending.parts_done.add(1)
                self.resume_store.save(sha256, pending)
            return
        slots = asyncio.Semaphore(self.part_concurrency)

        async def send(number: int, url: str, offset: int, size: int) -> None:
            async with slots:
                await self._put(url, body, offset, size, on_progress)
            pending.parts_done.add(number)
            self.resume_store.save(sha256, pending)

        try:
            async with asyncio.TaskGroup() as group:
                for part in ticket.parts:
                    if part.part_number not in pending.parts_done:
                        group.create_task(
                            send(part.part_number, part.url, part.offset, part.byte_size)
                        )
        except BaseExceptionGroup as failed:
            # The first part's failure stands for all (the others were cancelled by it):
            # callers catch ApiError, not an exception group.
            raise failed.exceptions[0] from None

    async def _put(
        self, url: str, body: Body, offset: int, size: int, on_progress: Progress | None
    ) -> None:
        sent = 0

        def counted(n: int) -> None:
            nonlocal sent
            sent += n
            if on_progress:
                on_progress(n)

        def content() -> AsyncIterator[bytes]:
            nonlocal sent
            if sent and on_progress:
                on_progress(-sent)  # a retry sends the range again
            sent = 0
            return body.chunks(offset, size, counted)

        await self._attempts(
            self._storage,
            "PUT",
            url,
            content=content,
            headers={"Content-Length": str(size)},
            idempotent=True,
        )

    async def start_upload(
        self, byte_size: int, sha256: str, content_type: str | None = None
    ) -> httpx.Response:
        """POST /v1/uploads: a presigned upload's ticket (see ``upload`` for the whole)."""
        payload: dict[str, Any] = {"byte_size": byte_size, "sha256": sha256}
        if content_type:
            payload["content_type"] = content_type
        # A repeated start only leaves an unused ticket, which expires: safe to retry.
        return await self._call(routes.START_UPLOAD, json=payload, idempotent=True)

    async def complete_upload(
        self, upload_id: object, *, idempotency_key: str | None = None
    ) -> UploadAccepted:
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}
        response = await self._call(
            routes.COMPLETE_UPLOAD, {"upload_id": upload_id}, headers=headers, idempotent=True
        )
        return _accepted(response)

    async def get_upload(self, upload_id: object) -> UploadStatus:
        return await self._model(routes.GET_UPLOAD, UploadStatus, {"upload_id": upload_id})

    async def get_image(self, image_id: object) -> Image:
        return await self._model(routes.GET_IMAGE, Image, {"image_id": image_id})

    async def list_images(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        status: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
    ) -> ImagePage:
        params = _params(
            limit=limit,
            cursor=cursor,
            status=status,
            created_after=created_after,
            created_before=created_before,
        )
        response = await self._call(routes.LIST_IMAGES, params=params)
        return decode(ImagePage, response.json())

    async def images(
        self,
        *,
        status: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int = 200,
    ) -> AsyncIterator[ImageSummary]:
        """Every image, newest first, following the keyset pages (uploads arriving
        meanwhile never shift or repeat them)."""
        pages = follow(
            lambda cursor: self.list_images(
                limit=page_size,
                cursor=cursor,
                status=status,
                created_after=created_after,
                created_before=created_before,
            )
        )
        async for item in pages:
            yield item

    async def delete_image(self, image_id: object) -> None:
        await self._call(routes.DELETE_IMAGE, {"image_id": image_id})

    async def reprocess(
        self, image_id: object, stages: Sequence[str] | None = None
    ) -> ReprocessAccepted:
        """Run ``stages`` (default: all) again. A stage a worker is running: Conflict
        with code ``stage-running``."""
        response = await self._call(
            routes.REPROCESS,
            {"image_id": image_id},
            json={"stages": list(stages or [])},
            idempotent=True,  # asking twice leaves the stages pending once
        )
        return decode(ReprocessAccepted, response.json())

    async def duplicates(self, image_id: object) -> Duplicates:
        return await self._model(routes.DUPLICATES, Duplicates, {"image_id": image_id})

    async def restore_image(self, image_id: object) -> Image:
        """Bring a trashed image back (a no-op for one not trashed); the server checks it
        for duplicates again, so it rejoins its group."""
        response = await self._call(routes.RESTORE_IMAGE, {"image_id": image_id}, idempotent=True)
        return decode(Image, response.json())

    # -- duplicate groups --------------------------------------------------------------

    async def list_duplicate_groups(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> DuplicateGroupPage:
        response = await self._call(routes.LIST_GROUPS, params=_params(limit=limit, cursor=cursor))
        return decode(DuplicateGroupPage, response.json())

    async def duplicate_groups(
        self, *, page_size: int = 200
    ) -> AsyncIterator[DuplicateGroupSummary]:
        """Every duplicate group, the latest changed first, following the keyset pages."""
        pages = follow(lambda cursor: self.list_duplicate_groups(limit=page_size, cursor=cursor))
        async for item in pages:
            yield item

    async def get_duplicate_group(self, group_id: object) -> DuplicateGroupView:
        return await self._model(routes.GET_GROUP, DuplicateGroupView, {"group_id": group_id})

    async def resolve_duplicate_group(
        self,
        group_id: object,
        *,
        version: int,
        keep: Sequence[object] = (),
        trash: Sequence[object] = (),
    ) -> ResolveAnswer:
        """Trash ``trash`` (members not named are kept) at the group's ``version``: a
        group changed since is a Conflict with code ``group-changed`` and the
        ``current_version`` in ``problem``. Trashed images can be restored."""
        request = ResolveRequest(
            version=version,
            keep=[UUID(str(i)) for i in keep],
            trash=[UUID(str(i)) for i in trash],
        )
        return await self._resolve(group_id, request)

    async def dismiss_duplicate_group(self, group_id: object, *, version: int) -> ResolveAnswer:
        """Record that the members are not duplicates: the group goes, and they are never
        grouped together again."""
        return await self._resolve(group_id, ResolveRequest(version=version, dismiss=True))

    async def _resolve(self, group_id: object, request: ResolveRequest) -> ResolveAnswer:
        response = await self._call(
            routes.RESOLVE_GROUP,
            {"group_id": group_id},
            json=request.to_json(),
            idempotent=True,  # the server keeps the answer by (group, version)
        )
        return decode(ResolveAnswer, response.json())

    # -- similar stacks ----------------------------------------------------------------

    async def list_similar_stacks(
        self, *, limit: int | None = None, cursor: str | None = None, resolved: bool | None = None
    ) -> SimilarStackPage:
        """A page of stacks; ``resolved``: only resolved ones (True) or those to review."""
        params = _params(limit=limit, cursor=cursor, resolved=resolved)
        response = await self._call(routes.LIST_STACKS, params=params)
        return decode(SimilarStackPage, response.json())

    async def similar_stacks(
        self, *, page_size: int = 200, resolved: bool | None = None
    ) -> AsyncIterator[SimilarStackSummary]:
        """Every similar stack, the latest changed first, following the keyset pages."""
        pages = follow(
            lambda cursor: self.list_similar_stacks(
                limit=page_size, cursor=cursor, resolved=resolved
            )
        )
        async for item in pages:
            yield item

    async def get_similar_stack(self, stack_id: object) -> SimilarStackView:
        return await self._model(routes.GET_STACK, SimilarStackView, {"stack_id": stack_id})

    async def resolve_similar_stack(
        self,
        stack_id: object,
        *,
        version: int,
        keep: object | None = None,
        trash: Sequence[object] = (),
    ) -> StackResolveAnswer:
        """Keep ``keep`` and trash only ``trash`` (nothing by default: a burst's other
        frames are photos too) at the stack's ``version``: a stack changed since is a
        Conflict with code ``stack-changed`` and the ``current_version`` in ``problem``."""
        request = StackResolveRequest(
            version=version,
            keep=None if keep is None else UUID(str(keep)),
            trash=[UUID(str(i)) for i in trash],
        )
        return await self._resolve_stack(stack_id, request)

    async def dismiss_similar_stack(self, stack_id: object, *, version: int) -> StackResolveAnswer:
        """Record that the members are not one scene: the stack goes, and its duplicate
        groups are never stacked together again."""
        return await self._resolve_stack(
            stack_id, StackResolveRequest(version=version, dismiss=True)
        )

    async def _resolve_stack(
        self, stack_id: object, request: StackResolveRequest
    ) -> StackResolveAnswer:
        response = await self._call(
            routes.RESOLVE_STACK,
            {"stack_id": stack_id},
            json=request.to_json(),
            idempotent=True,  # the server keeps the answer by (stack, version)
        )
        return decode(StackResolveAnswer, response.json())

    # -- downloads ---------------------------------------------------------------------

    async def original(self, image_id: object) -> bytes:
        with _Sink(None) as sink:
            await self._download(routes.ORIGINAL, {"image_id": image_id}, sink)
            return sink.getvalue()

    async def thumbnail(self, image_id: object, size: int) -> bytes:
        with _Sink(None) as sink:
            await self._download(routes.THUMBNAIL, {"image_id": image_id, "size": size}, sink)
            return sink.getvalue()

    async def download_original(self, image_id: object, dest: Destination) -> int:
        """Write the original to ``dest`` (a path, written whole or not at all, or a
        binary file); returns the byte count."""
        with _Sink(dest) as sink:
            return await self._download(routes.ORIGINAL, {"image_id": image_id}, sink)

    async def download_thumbnail(self, image_id: object, size: int, dest: Destination) -> int:
        with _Sink(dest) as sink:
            return await self._download(
                routes.THUMBNAIL, {"image_id": image_id, "size": size}, sink
            )

    async def _download(self, route: Route, params: dict[str, object], sink: _Sink) -> int:
        response = await self._call(route, params, stream=True)
        try:
            if response.status_code in (301, 302, 303, 307, 308):
                # IMGFLOW_API_DOWNLOADS=redirect: a presigned storage URL, fetched
                # without the API key.
                location = response.headers["location"]
                await response.aclose()
                response = await self._attempts(self._storage, "GET", location, stream=True)
            written = 0
            async for chunk in response.aiter_bytes():
                sink.write(chunk)
                written += len(chunk)
            return written
        finally:
            await response.aclose()

    # -- events ------------------------------------------------------------------------

    async def events(
        self, *, last_event_id: str | int | None = None, reconnect: bool = True
    ) -> AsyncIterator[ServerEvent]:
        """The tenant's events as they happen: an ``open`` message first (on every
        connection), then ``image`` and ``stage`` ones. A dropped stream reconnects with
        ``Last-Event-ID``, and the server replays what was missed."""
        last = None if last_event_id is None else str(last_event_id)
        async for event in self._event_stream(routes.TENANT_EVENTS, {}, last, reconnect):
            yield event

    async def image_events(self, image_id: object) -> AsyncIterator[ServerEvent]:
        """One image's ``state`` and then each change, until every stage has finished."""
        async for event in self._event_stream(
            routes.IMAGE_EVENTS, {"image_id": image_id}, None, True
        ):
            yield event
            if event.type in TERMINAL_IMAGE_EVENTS or (
                event.event == "state" and event.data.get("finished")
            ):
                return

    async def _event_stream(
        self, route: Route, params: dict[str, object], last_id: str | None, reconnect: bool
    ) -> AsyncIterator[ServerEvent]:
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_id} if last_id is not None else {}
            parser = SseParser(last_id=last_id)
            try:
                response = await self._call(
                    route, params, headers=headers, stream=True, http_timeout=self._stream_timeout
                )
                try:
                    if response.status_code == 204:  # nothing more will come
                        return
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is not None:
                            failures = 0
                            last_id = parser.last_id
                            yield event
                finally:
                    await response.aclose()
            except httpx.TransportError as exc:  # dropped mid-stream
                if not reconnect:
                    raise ConnectionFailed(self.base_url, exc) from exc
                failures += 1
                delay = self.retry.delay_s(failures)
                if delay is None:
                    raise ConnectionFailed(self.base_url, exc) from exc
                self._notify(
                    RetryNotice("GET", route.template, failures, delay, error=describe(exc))
                )
                await asyncio.sleep(delay)
                continue
            if not reconnect:
                return
            # The server ended the stream (a client too far behind is cut off, or the
            # server is stopping): come back after the pause it asked for.
            await asyncio.sleep((parser.retry_ms or 1000) / 1000)

    # -- webhooks ----------------------------------------------------------------------

    async def create_webhook(self, url: str, events: Sequence[str] | None = None) -> WebhookCreated:
        payload: dict[str, Any] = {"url": url}
        if events is not None:
            payload["events"] = list(events)
        response = await self._call(routes.CREATE_WEBHOOK, json=payload)
        return decode(WebhookCreated, response.json())

    async def webhooks(self) -> list[Webhook]:
        response = await self._call(routes.LIST_WEBHOOKS)
        return [decode(Webhook, item) for item in response.json()["items"]]

    async def enable_webhook(
        self, webhook_id: object, *, drop_backlog: bool = False
    ) -> WebhookEnabled:
        """Re-enable a paused or disabled webhook: its pending deliveries go in order, or
        (``drop_backlog``) are dropped."""
        response = await self._call(
            routes.ENABLE_WEBHOOK,
            {"webhook_id": webhook_id},
            json={"backlog": "drop" if drop_backlog else "deliver"},
        )
        return decode(WebhookEnabled, response.json())

    async def delete_webhook(self, webhook_id: object) -> None:
        await self._call(routes.DELETE_WEBHOOK, {"webhook_id": webhook_id})

    async def deliveries(self, webhook_id: object, *, limit: int | None = None) -> list[Delivery]:
        response = await self._call(
            routes.DELIVERIES, {"webhook_id": webhook_id}, params=_params(limit=limit)
        )
        return [decode(Delivery, item) for item in response.json()["items"]]

    async def usage(self) -> Usage:
        """GET /v1/usage: images and bytes stored, jobs waiting by kind, and the limits."""
        return await self._model(routes.USAGE, Usage, {})

    async def ready(self) -> dict[str, Any]:
        """GET /readyz: whether PostgreSQL, the broker and storage answer the server."""
        response = await self._call(routes.READY)
        return response.json()  # type: ignore[no-any-return]

    # -- the one way requests are sent -------------------------------------------------

    async def _model(self, route: Route, model: type[T], params: dict[str, object]) -> T:
        return decode(model, (await self._call(route, params)).json())

    async def _call(
        self,
        route: Route,
        path_params: dict[str, object] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        return await self._attempts(
            self._api, route.method, route.path(**(path_params or {})), **kwargs
        )

    async def _attempts(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: Callable[[], bytes | AsyncIterator[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
        http_timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send, retrying what the policy allows; an error answer becomes ApiError.

        ``content`` is a factory: a streamed body cannot be replayed, so each attempt
        makes its own.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        retry = 0
        while True:
            request = client.build_request(
                method,
                url,
                params=params,
                json=json,
                content=content() if content is not None else None,
                headers=headers,
                timeout=http_timeout if http_timeout is not None else client.timeout,
            )
            try:
                response = await client.send(request, stream=stream)
            except httpx.TransportError as exc:
                retry += 1
                delay = (
                    self.retry.delay_s(retry)
                    if self.retry.should_retry_error(exc, idempotent)
                    else None
                )
                if delay is None:
                    raise ConnectionFailed(_origin(request.url), exc) from exc
                self._notify(RetryNotice(method, url, retry, delay, error=describe(exc)))
                await asyncio.sleep(delay)
                continue
            if response.status_code < 400:
                return response
            await response.aread()
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            error = ApiError.from_response(response, retry_after)
            await response.aclose()
            if self.retry.should_retry_status(response.status_code, idempotent):
                retry += 1
                delay = self.retry.delay_s(retry, retry_after)
                if delay is not None:
                    self._notify(
                        RetryNotice(method, url, retry, delay, status=error.status, code=error.code)
                    )
                    await asyncio.sleep(delay)
                    continue
            raise error

    def _notify(self, notice: RetryNotice) -> None:
        if self.on_retry is not None:
            self.on_retry(notice)


def _tls_for(base_url: str) -> ssl.SSLContext | bool:
    """Loading the CA certificates costs each command ~0.1 s of CPU, which a plain-HTTP
    API never uses: then a context that trusts nothing, so an https URL reached through
    this client would fail verification, never go unverified."""
    if base_url.lower().startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


def _accepted(response: httpx.Response) -> UploadAccepted:
    # ``created`` is the status, not a member of the body: decoded with it, not replaced
    # after (one model built per upload, not two).
    return decode(UploadAccepted, {**response.json(), "created": response.status_code == 201})


def _params(**values: Any) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in values.items()
        if v is not None
    }


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode()}"


class _Sink:
    """Where a download goes: memory, an open binary file, or a path written through a
    temporary file renamed into place, so a broken download leaves no partial file."""

    def __init__(self, dest: Destination | None) -> None:
        self._dest = dest
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self._temp: Path | None = None

    def __enter__(self) -> _Sink:
        if isinstance(self._dest, str | os.PathLike):
            target = Path(self._dest)
            fd, name = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
            self._file, self._temp = os.fdopen(fd, "wb"), Path(name)
        elif self._dest is not None:
            self._file = self._dest
        return self

    def write(self, chunk: bytes) -> None:
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._buffer += chunk

    def getvalue(self) -> bytes:
        return bytes(self._buffer)

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self._temp is None or self._file is None:
            return
        self._file.close()
        if exc_type is None:
            os.replace(self._temp, Path(self._dest))  # type: ignore[arg-type]
        else:
            with contextlib.suppress(OSError):
                self._temp.unlink()

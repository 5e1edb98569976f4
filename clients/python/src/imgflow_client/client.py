"""Client: the blocking face of AsyncClient, for scripts and notebooks.

One implementation of the protocol (the async one) runs on an event loop in a helper
thread (anyio's blocking portal); each method here waits for its coroutine, and each
iterator pulls its async iterator one item at a time. Retries, uploads, resume and
events therefore behave exactly alike in both clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from imgflow_client.async_client import AsyncClient, Destination, Source
from imgflow_client.body import Progress
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
    ServerEvent,
    SimilarStackPage,
    SimilarStackSummary,
    SimilarStackView,
    StackResolveAnswer,
    UploadAccepted,
    UploadStatus,
    Usage,
    Webhook,
    WebhookCreated,
    WebhookEnabled,
)

T = TypeVar("T")


class Client:
    """``with Client(url, api_key) as client: ...``; the keyword arguments are
    AsyncClient's (retry policy, timeouts, presigned threshold, ``on_retry``...)."""

    def __init__(self, base_url: str, api_key: str | None, **options: Any) -> None:
        self._portal_context = start_blocking_portal()
        self._portal: BlockingPortal = self._portal_context.__enter__()

        async def make() -> AsyncClient:
            return AsyncClient(base_url, api_key, **options)

        self._async = self._portal.call(make)

    @property
    def async_client(self) -> AsyncClient:
        return self._async

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._portal_context is None:
            return
        try:
            self._portal.call(self._async.aclose)
        finally:
            self._portal_context.__exit__(None, None, None)
            self._portal_context = None  # type: ignore[assignment]

    def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        return self._portal.call(func, *args)

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._portal.call(iterator.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None and self._portal_context is not None:
                self._portal.call(aclose)

    def _kw(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            return await method(*args, **kwargs)

        return self._portal.call(call)

    # -- the same methods as AsyncClient ------------------------------------------------

    def upload(
        self,
        source: Source,
        *,
        sha256: str | None = None,
        idempotency_key: str | None = None,
        on_progress: Progress | None = None,
    ) -> UploadAccepted:
        return self._kw(  # type: ignore[no-any-return]
            self._async.upload,
            source,
            sha256=sha256,
            idempotency_key=idempotency_key,
            on_progress=on_progress,
        )

    def get_upload(self, upload_id: object) -> UploadStatus:
        return self._run(self._async.get_upload, upload_id)  # type: ignore[no-any-return]

    def get_image(self, image_id: object) -> Image:
        return self._run(self._async.get_image, image_id)  # type: ignore[no-any-return]

    def list_images(self, **filters: Any) -> ImagePage:
        return self._kw(self._async.list_images, **filters)  # type: ignore[no-any-return]

    def images(
        self,
        *,
        status: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int = 200,
    ) -> Iterator[ImageSummary]:
        return self._iterate(
            self._async.images(
                status=status,
                created_after=created_after,
                created_before=created_before,
                page_size=page_size,
            )
        )

    def delete_image(self, image_id: object) -> None:
        self._run(self._async.delete_image, image_id)

    def reprocess(self, image_id: object, stages: Sequence[str] | None = None) -> ReprocessAccepted:
        return self._run(self._async.reprocess, image_id, stages)  # type: ignore[no-any-return]

    def duplicates(self, image_id: object) -> Duplicates:
        return self._run(self._async.duplicates, image_id)  # type: ignore[no-any-return]

    def restore_image(self, image_id: object) -> Image:
        return self._run(self._async.restore_image, image_id)  # type: ignore[no-any-return]

    def list_duplicate_groups(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> DuplicateGroupPage:
        return self._kw(  # type: ignore[no-any-return]
            self._async.list_duplicate_groups, limit=limit, cursor=cursor
        )

    def duplicate_groups(self, *, page_size: int = 200) -> Iterator[DuplicateGroupSummary]:
        return self._iterate(self._async.duplicate_groups(page_size=page_size))

    def get_duplicate_group(self, group_id: object) -> DuplicateGroupView:
        return self._run(self._async.get_duplicate_group, group_id)  # type: ignore[no-any-return]

    def resolve_duplicate_group(
        self,
        group_id: object,
        *,
        version: int,
        keep: Sequence[object] = (),
        trash: Sequence[object] = (),
    ) -> ResolveAnswer:
        return self._kw(  # type: ignore[no-any-return]
            self._async.resolve_duplicate_group, group_id, version=version, keep=keep, trash=trash
        )

    def dismiss_duplicate_group(self, group_id: object, *, version: int) -> ResolveAnswer:
        return self._kw(  # type: ignore[no-any-return]
            self._async.dismiss_duplicate_group, group_id, version=version
        )

    def list_similar_stacks(
        self, *, limit: int | None = None, cursor: str | None = None, resolved: bool | None = None
    ) -> SimilarStackPage:
        return self._kw(  # type: ignore[no-any-return]
            self._async.list_similar_stacks, limit=limit, cursor=cursor, resolved=resolved
        )

    def similar_stacks(
        self, *, page_size: int = 200, resolved: bool | None = None
    ) -> Iterator[SimilarStackSummary]:
        return self._iterate(self._async.similar_stacks(page_size=page_size, resolved=resolved))

    def get_similar_stack(self, stack_id: object) -> SimilarStackView:
        return self._run(self._async.get_similar_stack, stack_id)  # type: ignore[no-any-return]

    def resolve_similar_stack(
        self,
        stack_id: object,
        *,
        version: int,
        keep: object | None = None,
        trash: Sequence[object] = (),
    ) -> StackResolveAnswer:
        return self._kw(  # type: ignore[no-any-return]
            self._async.resolve_similar_stack, stack_id, version=version, keep=keep, trash=trash
        )

    def dismiss_similar_stack(self, stack_id: object, *, version: int) -> StackResolveAnswer:
        return self._kw(  # type: ignore[no-any-return]
            self._async.dismiss_similar_stack, stack_id, version=version
        )

    def original(self, image_id: object) -> bytes:
        return self._run(self._async.original, image_id)  # type: ignore[no-any-return]

    def thumbnail(self, image_id: object, size: int) -> bytes:
        return self._run(self._async.thumbnail, image_id, size)  # type: ignore[no-any-return]

    def download_original(self, image_id: object, dest: Destination) -> int:
        return self._run(self._async.download_original, image_id, dest)  # type: ignore[no-any-return]

    def download_thumbnail(self, image_id: object, size: int, dest: Destination) -> int:
        return self._run(  # type: ignore[no-any-return]
            self._async.download_thumbnail, image_id, size, dest
        )

    def events(
        self, *, last_event_id: str | int | None = None, reconnect: bool = True
    ) -> Iterator[ServerEvent]:
        return self._iterate(self._async.events(last_event_id=last_event_id, reconnect=reconnect))

    def image_events(self, image_id: object) -> Iterator[ServerEvent]:
        return self._iterate(self._async.image_events(image_id))

    def create_webhook(self, url: str, events: Sequence[str] | None = None) -> WebhookCreated:
        return self._run(self._async.create_webhook, url, events)  # type: ignore[no-any-return]

    def webhooks(self) -> list[Webhook]:
        return self._run(self._async.webhooks)  # type: ignore[no-any-return]

    def enable_webhook(self, webhook_id: object, *, drop_backlog: bool = False) -> WebhookEnabled:
        return self._kw(self._async.enable_webhook, webhook_id, drop_backlog=drop_backlog)  # type: ignore[no-any-return]

    def delete_webhook(self, webhook_id: object) -> None:
        self._run(self._async.delete_webhook, webhook_id)

    def deliveries(self, webhook_id: object, *, limit: int | None = None) -> list[Delivery]:
        return self._kw(self._async.deliveries, webhook_id, limit=limit)  # type: ignore[no-any-return]

    def usage(self) -> Usage:
        return self._run(self._async.usage)  # type: ignore[no-any-return]

    def ready(self) -> dict[str, Any]:
        return self._run(self._async.ready)  # type: ignore[no-any-return]

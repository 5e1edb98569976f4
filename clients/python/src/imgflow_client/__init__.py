"""The imgflow API from Python: ``Client`` (blocking) and ``AsyncClient`` (asyncio)."""

from typing import TYPE_CHECKING

from imgflow_client.async_client import AsyncClient
from imgflow_client.errors import (
    ApiError,
    Conflict,
    ConnectionFailed,
    ImgflowError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from imgflow_client.files import derive_idempotency_key
from imgflow_client.models import (
    Delivery,
    Duplicate,
    DuplicateGroupPage,
    DuplicateGroupSummary,
    DuplicateGroupView,
    Duplicates,
    GroupEvidence,
    GroupMember,
    Image,
    ImagePage,
    ImageSummary,
    ReprocessAccepted,
    ResolveAnswer,
    ResolveRequest,
    ServerEvent,
    SuggestedKeeper,
    ThumbnailLink,
    UploadAccepted,
    UploadStatus,
    UploadTicket,
    Webhook,
    WebhookCreated,
)
from imgflow_client.resume import MemoryResumeStore, PendingUpload, ResumeStore
from imgflow_client.retry import RetryNotice, RetryPolicy

if TYPE_CHECKING:
    from imgflow_client.client import Client

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Client is imported on first use: it brings anyio's thread portal (~60 ms of start-up
    # CPU), which the command and AsyncClient users never need.
    if name == "Client":
        from imgflow_client.client import Client

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Delivery",
    "Duplicate",
    "DuplicateGroupPage",
    "DuplicateGroupSummary",
    "DuplicateGroupView",
    "Duplicates",
    "GroupEvidence",
    "GroupMember",
    "Image",
    "ImagePage",
    "ImageSummary",
    "ImgflowError",
    "MemoryResumeStore",
    "NotFound",
    "PendingUpload",
    "RateLimited",
    "ReprocessAccepted",
    "ResolveAnswer",
    "ResolveRequest",
    "ResumeStore",
    "RetryNotice",
    "RetryPolicy",
    "ServerEvent",
    "SuggestedKeeper",
    "ThumbnailLink",
    "Unauthorized",
    "Unavailable",
    "UploadAccepted",
    "UploadStatus",
    "UploadTicket",
    "Webhook",
    "WebhookCreated",
    "derive_idempotency_key",
]

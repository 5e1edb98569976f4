"""The imgflow API from Python: ``Client`` (blocking) and ``AsyncClient`` (asyncio)."""

from imgflow_client.async_client import AsyncClient
from imgflow_client.client import Client
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

__version__ = "0.1.0"

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

"""The imgflow API from Python: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

The names below are imported on first use (PEP 562), so importing a submodule (the
`imgflow` command does) costs only that submodule: the command must be able to set up
how httpx is imported before anything imports httpx (see cli/__init__.py), and
``Client`` brings anyio's thread portal (~60 ms of start-up CPU) that the command and
AsyncClient users never need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
        LimitValues,
        ReprocessAccepted,
        ResolveAnswer,
        ResolveRequest,
        ServerEvent,
        SimilarStackPage,
        SimilarStackSummary,
        SimilarStackView,
        StackEvidence,
        StackMember,
        StackResolution,
        StackResolveAnswer,
        StackResolveRequest,
        SuggestedKeeper,
        SuggestedPick,
        ThumbnailLink,
        UploadAccepted,
        UploadStatus,
        UploadTicket,
        Usage,
        Webhook,
        WebhookCreated,
        WebhookEnabled,
    )
    from imgflow_client.resume import MemoryResumeStore, PendingUpload, ResumeStore
    from imgflow_client.retry import RetryNotice, RetryPolicy

__version__ = "0.1.0"

# Public name -> the submodule that defines it.
_WHERE = {
    "AsyncClient": "async_client",
    "Client": "client",
    **dict.fromkeys(
        [
            "ApiError",
            "Conflict",
            "ConnectionFailed",
            "ImgflowError",
            "NotFound",
            "RateLimited",
            "Unauthorized",
            "Unavailable",
        ],
        "errors",
    ),
    "derive_idempotency_key": "files",
    **dict.fromkeys(
        [
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
            "LimitValues",
            "ReprocessAccepted",
            "ResolveAnswer",
            "ResolveRequest",
            "ServerEvent",
            "SimilarStackPage",
            "SimilarStackSummary",
            "SimilarStackView",
            "StackEvidence",
            "StackMember",
            "StackResolution",
            "StackResolveAnswer",
            "StackResolveRequest",
            "SuggestedPick",
            "SuggestedKeeper",
            "ThumbnailLink",
            "UploadAccepted",
            "UploadStatus",
            "UploadTicket",
            "Usage",
            "Webhook",
            "WebhookCreated",
            "WebhookEnabled",
        ],
        "models",
    ),
    **dict.fromkeys(["MemoryResumeStore", "PendingUpload", "ResumeStore"], "resume"),
    **dict.fromkeys(["RetryNotice", "RetryPolicy"], "retry"),
}

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
    "LimitValues",
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
    "SimilarStackPage",
    "SimilarStackSummary",
    "SimilarStackView",
    "StackEvidence",
    "StackMember",
    "StackResolution",
    "StackResolveAnswer",
    "StackResolveRequest",
    "SuggestedKeeper",
    "SuggestedPick",
    "ThumbnailLink",
    "Unauthorized",
    "Unavailable",
    "UploadAccepted",
    "UploadStatus",
    "UploadTicket",
    "Usage",
    "Webhook",
    "WebhookCreated",
    "WebhookEnabled",
    "derive_idempotency_key",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])

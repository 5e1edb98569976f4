"""The store that signs URLs for clients: presigned uploads and download redirects.

A presigned URL is signed for its Host, so it must name the S3 endpoint clients reach
(IMGFLOW_S3_PUBLIC_ENDPOINT), which need not be the one this process uses. Signing is
local (HMAC, the region is configured), so this store never connects anywhere.
"""

from __future__ import annotations

from fastapi import Request

from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.dependencies import Resources


def presigner(request: Request) -> ObjectStore:
    """Built once per app, on first use."""
    res: Resources = request.app.state.resources
    endpoint = res.settings.s3_public_endpoint
    if endpoint is None:
        return res.store
    store: ObjectStore | None = getattr(request.app.state, "presigner", None)
    if store is None:
        store = ObjectStore.for_presigning(res.settings, endpoint)
        request.app.state.presigner = store
    return store

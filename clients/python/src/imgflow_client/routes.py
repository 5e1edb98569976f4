"""Every operation the client calls: verb, path template and the model it answers with.

One table, so a test can hold it against openapi.json: each route must exist there with
that verb, and its success answer must use the schema the model mirrors.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from imgflow_client import models


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    # The model of the success answer's JSON, or None (no body, bytes, or a stream).
    model: type | None = None
    status: int = 200

    def path(self, **params: object) -> str:
        return self.template.format(**{k: quote(str(v), safe="") for k, v in params.items()})


UPLOAD_IMAGE = Route("POST", "/v1/images", models.UploadAccepted, 201)
LIST_IMAGES = Route("GET", "/v1/images", models.ImagePage)
GET_IMAGE = Route("GET", "/v1/images/{image_id}", models.Image)
DELETE_IMAGE = Route("DELETE", "/v1/images/{image_id}", status=204)
REPROCESS = Route("POST", "/v1/images/{image_id}/reprocess", models.ReprocessAccepted, 202)
DUPLICATES = Route("GET", "/v1/images/{image_id}/duplicates", models.Duplicates)
ORIGINAL = Route("GET", "/v1/images/{image_id}/original")
THUMBNAIL = Route("GET", "/v1/images/{image_id}/thumbnails/{size}")
IMAGE_EVENTS = Route("GET", "/v1/images/{image_id}/events")
TENANT_EVENTS = Route("GET", "/v1/events")
START_UPLOAD = Route("POST", "/v1/uploads", models.UploadTicket, 201)
GET_UPLOAD = Route("GET", "/v1/uploads/{upload_id}", models.UploadStatus)
COMPLETE_UPLOAD = Route("POST", "/v1/uploads/{upload_id}/complete", models.UploadAccepted, 201)
CREATE_WEBHOOK = Route("POST", "/v1/webhooks", models.WebhookCreated, 201)
LIST_WEBHOOKS = Route("GET", "/v1/webhooks")  # {"items": [Webhook...]}
DELETE_WEBHOOK = Route("DELETE", "/v1/webhooks/{webhook_id}", status=204)
ENABLE_WEBHOOK = Route("POST", "/v1/webhooks/{webhook_id}/enable", models.WebhookEnabled)
DELIVERIES = Route("GET", "/v1/webhooks/{webhook_id}/deliveries")  # {"items": [Delivery...]}
RESTORE_IMAGE = Route("POST", "/v1/images/{image_id}/restore", models.Image)
LIST_GROUPS = Route("GET", "/v1/duplicate-groups", models.DuplicateGroupPage)
GET_GROUP = Route("GET", "/v1/duplicate-groups/{group_id}", models.DuplicateGroupView)
RESOLVE_GROUP = Route("POST", "/v1/duplicate-groups/{group_id}/resolve", models.ResolveAnswer)
LIST_STACKS = Route("GET", "/v1/similar-stacks", models.SimilarStackPage)
GET_STACK = Route("GET", "/v1/similar-stacks/{stack_id}", models.SimilarStackView)
RESOLVE_STACK = Route("POST", "/v1/similar-stacks/{stack_id}/resolve", models.StackResolveAnswer)
USAGE = Route("GET", "/v1/usage", models.Usage)
READY = Route("GET", "/readyz")

ALL: tuple[Route, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Route))
# Item models of the list answers above, which wrap them in {"items": [...]}.
ITEMS: dict[Route, type] = {LIST_WEBHOOKS: models.Webhook, DELIVERIES: models.Delivery}

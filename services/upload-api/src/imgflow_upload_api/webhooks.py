"""Webhook routes: register, list and remove a tenant's webhooks, and see their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from imgflow_upload_api import webhook_store
from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.problems import PROBLEM_MEDIA_TYPE, Problem
from imgflow_upload_api.webhook_store import InvalidWebhook, Webhook

router = APIRouter(tags=["webhooks"])

_PROBLEM = {"content": {PROBLEM_MEDIA_TYPE: {}}, "description": "RFC 9457 problem details"}


class WebhookRequest(BaseModel):
    url: str = Field(description="Where deliveries are POSTed: an http:// or https:// URL.")
    events: list[str] | None = Field(
        default=None,
        description="Event types or patterns (image.ready, image.failed, image.created, "
        "image.deleted, stage.pending|running|done|failed, image.*, stage.*, *); "
        "default image.ready and image.failed.",
    )


class WebhookView(BaseModel):
    id: UUID
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(WebhookView):
    # Shown once: keep it to verify the Imgflow-Signature header of each delivery.
    secret: str


class WebhookList(BaseModel):
    items: list[WebhookView]


class DeliveryView(BaseModel):
    id: UUID
    event_id: int
    type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]


class DeliveryList(BaseModel):
    items: list[DeliveryView]


def _resources(request: Request) -> Resources:
    return request.app.state.resources  # type: ignore[no-any-return]


def _view(hook: Webhook) -> WebhookView:
    return WebhookView(id=hook.id, url=hook.url, events=hook.events, created_at=hook.created_at)


def _not_found(raw: str) -> Problem:
    return Problem(404, "webhook-not-found", "Webhook not found", f"no webhook has the id {raw!r}")


def _parse_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError as exc:
        raise _not_found(raw) from exc


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses={401: _PROBLEM, 409: _PROBLEM, 422: _PROBLEM},
    summary="Register a webhook; the answer holds its signing secret, shown only this once",
)
async def create_webhook(
    body: WebhookRequest, request: Request, response: Response, caller: CurrentCaller
) -> WebhookCreated:
    res = _resources(request)
    try:
        url = webhook_store.check_url(body.url)
        events = webhook_store.check_events(body.events)
        await webhook_store.check_destination(url, allow_private=res.settings.webhook_allow_private)
    except InvalidWebhook as exc:
        raise Problem(422, exc.code, "Invalid webhook", exc.detail) from exc
    async with res.pool.acquire() as conn:
        created = await webhook_store.create(conn, caller.tenant_id, url, events)
    if created is None:
        limit = webhook_store.MAX_WEBHOOKS_PER_TENANT
        raise Problem(
            409,
            "too-many-webhooks",
            "Too many webhooks",
            f"a tenant may have {limit} webhooks; delete one first",
            limit=limit,
        )
    hook, secret = created
    response.headers["Location"] = f"/v1/webhooks/{hook.id}"
    return WebhookCreated(**_view(hook).model_dump(), secret=secret)


@router.get(
    "/v1/webhooks",
    response_model=WebhookList,
    responses={401: _PROBLEM},
    summary="The caller's webhooks (without their secrets)",
)
async def list_webhooks(request: Request, caller: CurrentCaller) -> WebhookList:
    async with _resources(request).pool.acquire() as conn:
        hooks = await webhook_store.list_all(conn, caller.tenant_id)
    return WebhookList(items=[_view(h) for h in hooks])


@router.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=204,
    responses={401: _PROBLEM, 404: _PROBLEM},
    summary="Remove a webhook; its pending deliveries are dropped",
)
async def delete_webhook(webhook_id: str, request: Request, caller: CurrentCaller) -> Response:
    parsed = _parse_id(webhook_id)
    async with _resources(request).pool.acquire() as conn:
        deleted = await webhook_store.delete(conn, caller.tenant_id, parsed)
    if not deleted:
        raise _not_found(webhook_id)
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses={401: _PROBLEM, 404: _PROBLEM},
    summary="A webhook's latest deliveries: pending, delivered or failed, with attempts",
)
async def list_deliveries(
    webhook_id: str,
    request: Request,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryList:
    parsed = _parse_id(webhook_id)
    async with _resources(request).pool.acquire() as conn:
        if await webhook_store.get(conn, caller.tenant_id, parsed) is None:
            raise _not_found(webhook_id)
        rows = await webhook_store.deliveries(conn, parsed, limit)
    for row in rows:
        if row["status"] != "pending":
            row["next_attempt_at"] = None
    return DeliveryList(items=[DeliveryView(**r) for r in rows])

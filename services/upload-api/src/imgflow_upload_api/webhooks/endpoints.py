"""Webhook routes: register, list (with each one's circuit-breaker state), re-enable and
remove a tenant's webhooks, and see their deliveries. Sending is not done here: the
webhook sender (services/webhook-sender) does it."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from imgflow_runtime.webhook_destinations import InvalidWebhook, check_destination
from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import parse_id, resources
from imgflow_upload_api.problems import PROBLEM_RESPONSE, Problem
from imgflow_upload_api.webhooks import repository, service
from imgflow_upload_api.webhooks.repository import Webhook
from imgflow_upload_api.webhooks.schemas import (
    DeliveryList,
    DeliveryView,
    WebhookCreated,
    WebhookEnabled,
    WebhookEnableRequest,
    WebhookList,
    WebhookRequest,
    WebhookView,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])


def _view(hook: Webhook) -> WebhookView:
    return WebhookView(
        id=hook.id,
        url=hook.url,
        events=hook.events,
        created_at=hook.created_at,
        state=hook.state,  # type: ignore[arg-type]
        state_since=hook.state_since,
        consecutive_failures=hook.consecutive_failures,
        last_error=hook.last_error,
        last_error_at=hook.last_error_at,
        next_probe_at=hook.next_probe_at,
        pending_deliveries=hook.pending_deliveries,
        backlog_dropped=hook.backlog_dropped,
    )


def _not_found(shown: str) -> Problem:
    return Problem(404, "webhook-not-found", "Webhook not found", f"no webhook has the id {shown}")


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses={401: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE},
    summary="Register a webhook; the answer holds its signing secret, shown only this once",
)
async def create_webhook(
    body: WebhookRequest, request: Request, response: Response, caller: CurrentCaller
) -> WebhookCreated:
    res = resources(request)
    try:
        url = service.check_url(body.url)
        events = service.check_events(body.events)
        await check_destination(url, allow_private=res.settings.webhook_allow_private)
    except InvalidWebhook as exc:
        raise Problem(422, exc.code, "Invalid webhook", exc.detail) from exc
    async with res.pool.acquire() as conn:
        secret = service.new_secret()
        limit = service.MAX_WEBHOOKS_PER_TENANT
        hook = await repository.create(conn, caller.tenant_id, url, events, secret, limit)
    if hook is None:
        raise Problem(
            409,
            "too-many-webhooks",
            "Too many webhooks",
            f"a tenant may have {limit} webhooks; delete one first",
            limit=limit,
        )
    response.headers["Location"] = f"/v1/webhooks/{hook.id}"
    return WebhookCreated(**_view(hook).model_dump(), secret=secret)


@router.get(
    "/v1/webhooks",
    response_model=WebhookList,
    responses={401: PROBLEM_RESPONSE},
    summary="The caller's webhooks (without their secrets), each with its state: active, "
    "paused or disabled, the last error and since when",
)
async def list_webhooks(request: Request, caller: CurrentCaller) -> WebhookList:
    async with resources(request).pool.acquire() as conn:
        hooks = await repository.list_all(conn, caller.tenant_id)
    return WebhookList(items=[_view(h) for h in hooks])


@router.post(
    "/v1/webhooks/{webhook_id}/enable",
    response_model=WebhookEnabled,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE},
    summary="Re-enable a paused or disabled webhook; its backlog is delivered in order, or dropped",
)
async def enable_webhook(
    webhook_id: str,
    request: Request,
    caller: CurrentCaller,
    body: Annotated[WebhookEnableRequest | None, Body()] = None,
) -> WebhookEnabled:
    parsed = parse_id(webhook_id, _not_found)
    drop = body is not None and body.backlog == "drop"
    async with resources(request).pool.acquire() as conn:
        done = await repository.enable(conn, caller.tenant_id, parsed, drop_backlog=drop)
        hook = await repository.get(conn, caller.tenant_id, parsed)
    if done is None or hook is None:
        raise _not_found(repr(webhook_id))
    before, dropped = done
    if before != "active":
        log.info(
            "webhook %s (tenant %s): %s -> active, re-enabled by the tenant (%d dropped)",
            parsed,
            caller.tenant_id,
            before,
            dropped,
        )
    return WebhookEnabled(**_view(hook).model_dump(), dropped_deliveries=dropped)


@router.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=204,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="Remove a webhook; its pending deliveries are dropped",
)
async def delete_webhook(webhook_id: str, request: Request, caller: CurrentCaller) -> Response:
    parsed = parse_id(webhook_id, _not_found)
    async with resources(request).pool.acquire() as conn:
        deleted = await repository.delete(conn, caller.tenant_id, parsed)
    if not deleted:
        raise _not_found(repr(webhook_id))
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="A webhook's latest deliveries: pending, delivered or failed, with attempts",
)
async def list_deliveries(
    webhook_id: str,
    request: Request,
    caller: CurrentCaller,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryList:
    parsed = parse_id(webhook_id, _not_found)
    async with resources(request).pool.acquire() as conn:
        if await repository.get(conn, caller.tenant_id, parsed) is None:
            raise _not_found(repr(webhook_id))
        rows = await repository.deliveries(conn, parsed, limit)
    for row in rows:
        if row["status"] != "pending":
            row["next_attempt_at"] = None
    return DeliveryList(items=[DeliveryView(**r) for r in rows])

"""Server-sent events: completion without polling (GET /v1/images/{id}/events, /v1/events).

Messages carry ``id:`` (the event's id), ``event:`` (``state``, ``stage``, ``image`` or
``open``) and JSON ``data:``; a comment line every ``IMGFLOW_EVENTS_HEARTBEAT_S`` keeps
proxies from closing an idle stream. On server shutdown the streams end, and clients
reconnect to another replica.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import WithJsonSchema
from sse_starlette import EventSourceResponse, ServerSentEvent

from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import Resources, parse_id, resources
from imgflow_upload_api.events.hub import EventHub
from imgflow_upload_api.events.streams import Message, image_stream, read_image_state, tenant_stream
from imgflow_upload_api.problems import PROBLEM_RESPONSE, Problem, image_not_found

router = APIRouter(tags=["events"])

# Tells EventSource how long to wait before reconnecting after the stream ends.
RETRY_MS = 2000


def _stream(events: list[str]) -> dict[int, dict[str, Any]]:
    """A 200 of server-sent events; in OpenAPI 3.1 the schema of an event stream describes
    one event as its fields (``id``, ``event``, ``data``, ``retry``)."""
    event = {
        "type": "object",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string", "enum": events},
            "data": {"type": "string", "contentMediaType": "application/json"},
            "retry": {"type": "integer", "const": RETRY_MS},
        },
    }
    return {
        200: {
            "content": {"text/event-stream": {"schema": event}},
            "description": "A stream of server-sent events",
        }
    }


# Ids are PostgreSQL bigints: longer digit strings name no event.
LAST_EVENT_ID_PATTERN = "^[0-9]{1,18}$"


_LAST_EVENT_ID = Header(
    alias="Last-Event-ID",
    description="Sent by EventSource on reconnect: the tenant stream replays the events "
    "after it; the image stream starts again from the current state.",
)
# Documented as a plain string (absent, not null, when there is none); checked by
# _parse_last_event_id, so a malformed id is our own 400, not FastAPI's 422.
LastEventId = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "pattern": LAST_EVENT_ID_PATTERN}),
    _LAST_EVENT_ID,
]


def _parse_last_event_id(raw: str | None) -> int | None:
    if raw is None:
        return None
    if re.fullmatch(LAST_EVENT_ID_PATTERN, raw.strip()) is None:
        raise Problem(
            400,
            "bad-last-event-id",
            "Bad Last-Event-ID",
            "Last-Event-ID must be the id of an event this stream sent",
        )
    return int(raw.strip())


def _hub(res: Resources) -> EventHub:
    hub = res.event_hub
    if hub is None:  # only while starting or stopping
        raise Problem(503, "events-unavailable", "Events unavailable", "retry in a moment")
    return hub


async def _sse(messages: AsyncIterator[Message]) -> AsyncIterator[ServerSentEvent]:
    async for m in messages:
        yield ServerSentEvent(
            json.dumps(m.data, separators=(",", ":")), event=m.event, id=str(m.id), retry=RETRY_MS
        )


def _response(res: Resources, messages: AsyncIterator[Message]) -> EventSourceResponse:
    settings = res.settings
    return EventSourceResponse(
        _sse(messages),
        ping=settings.events_heartbeat_s,
        send_timeout=settings.events_send_timeout_s,
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/v1/images/{image_id}/events",
    response_class=EventSourceResponse,
    responses={
        **_stream(["state", "stage", "image"]),
        204: {"description": "Reconnected after the final event: nothing more will come"},
        400: PROBLEM_RESPONSE,
        401: PROBLEM_RESPONSE,
        404: PROBLEM_RESPONSE,
    },
    summary="Stage changes of one image: its state first, then each change, until it is done",
)
async def image_events(
    image_id: str,
    request: Request,
    caller: CurrentCaller,
    last_event_id: LastEventId = None,
) -> Response:
    res = resources(request)
    hub = _hub(res)
    parsed = parse_id(image_id, image_not_found)
    state = await read_image_state(res.pool, caller.tenant_id, parsed)
    if state is None:
        raise image_not_found(repr(image_id))
    after = _parse_last_event_id(last_event_id)
    if state.finished and after is not None and after >= state.last_event_id:
        # An EventSource reconnecting after the final event: 204 tells it to stop.
        return Response(status_code=204)
    return _response(res, image_stream(hub, res.pool, caller.tenant_id, parsed))


@router.get(
    "/v1/events",
    response_class=EventSourceResponse,
    responses={
        **_stream(["open", "stage", "image", "duplicate_group", "similar_stack", "webhook"]),
        400: PROBLEM_RESPONSE,
        401: PROBLEM_RESPONSE,
    },
    summary="Every image, stage, duplicate-group, similar-stack and webhook (webhook.disabled) "
    "event of the caller's tenant (resumable with Last-Event-ID)",
)
async def tenant_events(
    request: Request,
    caller: CurrentCaller,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    res = resources(request)
    hub = _hub(res)
    after = _parse_last_event_id(last_event_id)
    return _response(res, tenant_stream(hub, res.pool, caller.tenant_id, after))

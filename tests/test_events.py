"""Completion without polling, against the real system: server-sent events (per image and
per tenant, with Last-Event-ID and a lost LISTEN connection) and signed webhooks
delivered to a real HTTP receiver, retried after failures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from imgflow_contracts.queues import Stage
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.db import stages
from imgflow_runtime.db.pool import connect
from imgflow_runtime.webhook_destinations import InvalidWebhook, check_destination
from imgflow_upload_api.events.hub import APPLICATION_NAME, Event, Signal, Subscription
from imgflow_upload_api.settings import ApiSettings
from imgflow_upload_api.webhooks.service import check_events
from tests.support import encode, new_tenant, photo_like, query, wait_for

STAGES = ("thumbnails", "hashing", "dedupe")
PROGRESS = ["pending", "running", "done"]
TIMEOUT_S = 120


def _jpeg(seed: int) -> bytes:
    return encode(photo_like(320, 240, seed=seed), "JPEG", quality=85)


def _tenant_headers(system: LocalSystem) -> dict[str, str]:
    return {"Authorization": f"Bearer {new_tenant(system)['api_key']}"}


# --- a minimal SSE client --------------------------------------------------------------


async def sse(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse a text/event-stream: one dict per message; comments (heartbeats) skipped."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                yield {
                    "event": fields.get("event", "message"),
                    "id": int(fields["id"]),
                    "data": json.loads(fields["data"]),
                }
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = f"{fields[name]}\n{value}" if name in fields else value


@dataclass
class Collector:
    """Reads a stream in a task, so a test can act while events arrive."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False

    async def read(self, client: httpx.AsyncClient, path: str, **kwargs: Any) -> None:
        async with client.stream("GET", path, **kwargs) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            async for message in sse(response):
                self.messages.append(message)
                self.changed.set()
        self.ended = True
        self.changed.set()

    async def until(self, done: Callable[[list[dict[str, Any]]], bool]) -> None:
        while not done(self.messages):
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), TIMEOUT_S)


def _outcome_of(image_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    def seen(messages: list[dict[str, Any]]) -> bool:
        return any(
            m["event"] == "image"
            and m["data"]["image_id"] == image_id
            and m["data"]["type"] in ("image.ready", "image.failed")
            for m in messages
        )

    return seen


def _opened(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and messages[0]["event"] == "open"


def _client(system: LocalSystem, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=system.api_url, headers=headers or system.auth_headers, timeout=TIMEOUT_S
    )


def _stage_history(messages: list[dict[str, Any]], image_id: str) -> dict[str, list[str]]:
    history: dict[str, list[str]] = {s: [] for s in STAGES}
    for m in messages:
        if m["event"] == "stage" and m["data"]["image_id"] == image_id:
            history[m["data"]["stage"]].append(m["data"]["status"])
    return history


# --- per image --------------------------------------------------------------------------


def test_an_image_stream_follows_every_stage_to_done_and_ends(system: LocalSystem) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with _client(system) as client:
            image_id = (await client.post("/v1/images", content=_jpeg(3001))).json()["id"]
            stream = Collector()
            await asyncio.wait_for(stream.read(client, f"/v1/images/{image_id}/events"), TIMEOUT_S)
            assert stream.ended
            return stream.messages

    messages = asyncio.run(scenario())
    state, *changes = messages
    assert state["event"] == "state"
    image_id = state["data"]["image_id"]
    assert set(state["data"]["stages"]) == set(STAGES)
    # each stage moves forward only, from where the state found it, and ends done
    history = _stage_history(changes, image_id)
    for stage in STAGES:
        statuses = [state["data"]["stages"][stage]["status"], *history[stage]]
        assert statuses[-1] == "done", (stage, statuses)
        assert [PROGRESS.index(s) for s in statuses] == sorted(
            PROGRESS.index(s) for s in statuses
        ), (stage, statuses)
    ids = [m["id"] for m in messages]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    if changes:  # the stream ends with the outcome, unless the state already was final
        assert changes[-1]["event"] == "image"
        assert changes[-1]["data"]["type"] == "image.ready"
    else:
        assert state["data"]["finished"] and state["data"]["status"] == "ready"


def test_a_finished_image_replays_its_state_and_ends(
    system: LocalSystem, api: httpx.Client
) -> None:
    image_id = api.post("/v1/images", content=_jpeg(3002)).json()["id"]
    wait_for(
        lambda: api.get(f"/v1/images/{image_id}").json()["status"] == "ready",
        what="image ready",
        timeout_s=TIMEOUT_S,
    )

    async def scenario() -> list[dict[str, Any]]:
        async with _client(system) as client:
            stream = Collector()
            await asyncio.wait_for(stream.read(client, f"/v1/images/{image_id}/events"), 30)
            return stream.messages

    [state] = asyncio.run(scenario())
    assert state["event"] == "state" and state["data"]["finished"]
    assert {s["status"] for s in state["data"]["stages"].values()} == {"done"}
    # an EventSource reconnecting after that is told to stop (it would retry forever)
    again = api.get(f"/v1/images/{image_id}/events", headers={"Last-Event-ID": str(state["id"])})
    assert again.status_code == 204


def test_an_image_stream_of_another_tenant_is_not_found(
    system: LocalSystem, api: httpx.Client
) -> None:
    mine = api.post("/v1/images", content=_jpeg(3003)).json()["id"]
    with httpx.Client(base_url=system.api_url, headers=_tenant_headers(system)) as other:
        for path in (f"/v1/images/{mine}/events", "/v1/images/not-a-uuid/events"):
            response = other.get(path)
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "image-not-found"


# --- per tenant -------------------------------------------------------------------------


def test_a_tenant_stream_sees_its_own_events_only_and_resumes(system: LocalSystem) -> None:
    first, second = _tenant_headers(system), _tenant_headers(system)

    async def scenario() -> tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]:
        async with _client(system, first) as one, _client(system, second) as two:
            streams = Collector(), Collector()
            readers = [
                asyncio.create_task(s.read(c, "/v1/events"))
                for s, c in zip(streams, (one, two), strict=True)
            ]
            for stream in streams:
                await stream.until(_opened)
            mine = (await one.post("/v1/images", content=_jpeg(3004))).json()["id"]
            theirs = (await two.post("/v1/images", content=_jpeg(3005))).json()["id"]
            await streams[0].until(_outcome_of(mine))
            await streams[1].until(_outcome_of(theirs))
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

            # Resume after the image's first event: the rest is replayed from the table.
            live = streams[0].messages
            resumed = Collector()
            reader = asyncio.create_task(
                resumed.read(one, "/v1/events", headers={"Last-Event-ID": str(live[1]["id"])})
            )
            await resumed.until(_outcome_of(mine))
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            return mine, theirs, live, resumed.messages

    mine, theirs, live, resumed = asyncio.run(scenario())
    assert live[0]["event"] == "open"
    assert {m["data"]["image_id"] for m in live[1:]} == {mine}  # never the other tenant's
    types = [m["data"]["type"] for m in live[1:]]
    assert types[0] == "image.created" and types[-1] == "image.ready"
    assert _stage_history(live, mine) == {stage: PROGRESS for stage in STAGES}
    # the resumed stream replays exactly what followed the given id
    assert resumed[0]["event"] == "open"
    assert [m["id"] for m in resumed[1:]] == [m["id"] for m in live[2:]]
    assert theirs not in {m["data"]["image_id"] for m in resumed[1:]}


def test_events_survive_a_lost_listen_connection(system: LocalSystem, database_url: str) -> None:
    headers = _tenant_headers(system)
    pid_sql = "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
    [before] = query(database_url, pid_sql, APPLICATION_NAME)

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        async with _client(system, headers) as client:
            stream = Collector()
            reader = asyncio.create_task(stream.read(client, "/v1/events"))
            await stream.until(_opened)
            # As if PostgreSQL dropped the API's LISTEN connection; upload at once, so the
            # image's first events happen while nobody listens.
            await asyncio.to_thread(
                query, database_url, "SELECT pg_terminate_backend($1)", before["pid"]
            )
            image_id = (await client.post("/v1/images", content=_jpeg(3006))).json()["id"]
            await stream.until(_outcome_of(image_id))
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            return image_id, stream.messages

    image_id, messages = asyncio.run(scenario())
    after = wait_for(
        lambda: query(database_url, pid_sql, APPLICATION_NAME), what="LISTEN reconnected"
    )
    assert after[0]["pid"] != before["pid"]
    # nothing was lost: replayed from the table after the reconnect, or heard live
    assert _stage_history(messages, image_id) == {stage: PROGRESS for stage in STAGES}
    types = [m["data"]["type"] for m in messages[1:]]
    assert types.count("image.created") == 1 and types.count("image.ready") == 1


def _metric(system: LocalSystem, name: str) -> float:
    text = httpx.get(f"{system.api_url}/metrics", timeout=10).text
    [line] = [ln for ln in text.splitlines() if ln.startswith(f"{name} ")]
    return float(line.split()[1])


def _subscribers(system: LocalSystem) -> float:
    return _metric(system, "imgflow_event_subscribers")


async def _waiting_image(conn: Any, tenant_name: str) -> str:
    """An image recorded as an upload records one, but with no jobs queued: its stages
    wait until the test moves them as a worker does (imgflow_runtime.db.stages)."""
    image_id = uuid.uuid4()
    tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", tenant_name)
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256)
               VALUES ($1, $2, $3, 'image/jpeg', 1, $4)""",
            image_id,
            tenant_id,
            f"tests/events/{image_id}",
            hashlib.sha256(image_id.bytes).hexdigest(),
        )
        await conn.executemany(
            "INSERT INTO image_stages (image_id, stage) VALUES ($1, $2)",
            [(image_id, stage.value) for stage in Stage],
        )
    return str(image_id)


def test_an_image_stream_catches_up_after_a_lost_listen_connection(
    system: LocalSystem, database_url: str, receiver: Receiver
) -> None:
    tenant = new_tenant(system)
    headers = {"Authorization": f"Bearer {tenant['api_key']}"}
    with httpx.Client(base_url=system.api_url, headers=headers) as client:
        hook = client.post("/v1/webhooks", json={"url": receiver.url, "events": ["image.failed"]})
        assert hook.status_code == 201
    pid_sql = "SELECT pid FROM pg_stat_activity WHERE application_name = $1"

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        conn = await connect(database_url)
        async with _client(system, headers) as client:
            image_id = await _waiting_image(conn, tenant["tenant"])
            stream = Collector()
            reader = asyncio.create_task(stream.read(client, f"/v1/images/{image_id}/events"))
            await stream.until(bool)
            [old] = await conn.fetch(pid_sql, APPLICATION_NAME)
            await conn.execute("SELECT pg_terminate_backend($1)", old["pid"])
            # The hub waits IMGFLOW_EVENTS_LISTEN_RETRY_S before it reconnects: these
            # changes are announced to nobody.
            for stage in Stage:
                await stages.mark_running(conn, uuid.UUID(image_id), stage)
            await stages.mark_done(conn, uuid.UUID(image_id), Stage.THUMBNAILS)

            def listening_again() -> bool:
                pids = {r["pid"] for r in query(database_url, pid_sql, APPLICATION_NAME)}
                return bool(pids - {old["pid"]}) and (
                    _metric(system, "imgflow_event_listen_connected") == 1
                )

            await asyncio.to_thread(wait_for, listening_again, what="LISTEN reconnected")
            # listening again: these arrive live
            await stages.mark_done(conn, uuid.UUID(image_id), Stage.HASHING)
            await stages.mark_failed(conn, uuid.UUID(image_id), Stage.DEDUPE, "x" * 5000)
            await asyncio.wait_for(reader, TIMEOUT_S)
        await conn.close()
        return image_id, stream.messages

    image_id, messages = asyncio.run(scenario())
    first, *rest = messages
    assert {s["status"] for s in first["data"]["stages"].values()} == {"pending"}
    # the missed changes come back as a fresh state, read after the reconnect
    [resync] = [m for m in rest if m["event"] == "state"]
    assert resync["data"]["stages"]["thumbnails"]["status"] == "done"
    assert resync["data"]["stages"]["dedupe"]["status"] == "running"
    live = [(m["data"]["type"], m["data"]["stage"]) for m in rest if m["event"] != "state"]
    assert live == [("stage.done", "hashing"), ("stage.failed", "dedupe"), ("image.failed", None)]
    [stored] = query(
        database_url,
        "SELECT length(error) AS n FROM image_events WHERE image_id = $1 AND type = 'stage.failed'",
        uuid.UUID(image_id),
    )
    assert stored["n"] == 500  # cut, so that a NOTIFY stays far below its 8000-byte limit

    headers_and_body = wait_for(lambda: receiver.requests, what="the image.failed delivery")
    [(delivery_headers, body)] = headers_and_body
    assert delivery_headers["imgflow-event"] == "image.failed"
    assert json.loads(body)["data"] == {
        "image_id": image_id,
        "stage": None,
        "status": "failed",
        "error": None,
    }


def test_disconnected_clients_leave_no_subscription_behind(system: LocalSystem) -> None:
    wait_for(lambda: _subscribers(system) == 0, what="no stream open")

    async def scenario() -> None:
        async with _client(system) as client:
            streams = [Collector() for _ in range(3)]
            readers = [asyncio.create_task(s.read(client, "/v1/events")) for s in streams]
            for stream in streams:
                await stream.until(_opened)
            assert await asyncio.to_thread(_subscribers, system) == 3
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    asyncio.run(scenario())
    wait_for(lambda: _subscribers(system) == 0, what="subscriptions released")


def test_a_bad_last_event_id_is_a_400(api: httpx.Client) -> None:
    image_id = api.post("/v1/images", content=_jpeg(3009)).json()["id"]
    for path in ("/v1/events", f"/v1/images/{image_id}/events"):
        response = api.get(path, headers={"Last-Event-ID": "yesterday"})
        assert response.status_code == 400
        assert response.json()["code"] == "bad-last-event-id"


# --- webhooks ---------------------------------------------------------------------------


@dataclass
class Receiver:
    """A real HTTP server that records each POST and answers with the scripted codes."""

    url: str
    requests: list[tuple[dict[str, str], bytes]]
    script: list[int]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    requests: list[tuple[dict[str, str], bytes]] = []
    script: list[int] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = script.pop(0) if script else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks", requests, script)
    finally:
        server.shutdown()
        server.server_close()


def _verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    """What a receiver does (docs/api/events-and-webhooks.md): recompute the HMAC, check the age."""
    parts = dict(item.split("=", 1) for item in headers["imgflow-signature"].split(","))
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"])
    assert abs(time.time() - int(parts["t"])) < 300


def test_webhooks_are_signed_and_delivered(system: LocalSystem, receiver: Receiver) -> None:
    with httpx.Client(base_url=system.api_url, headers=_tenant_headers(system)) as client:
        created = client.post(
            "/v1/webhooks", json={"url": receiver.url, "events": ["image.ready", "stage.done"]}
        )
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_")
        assert created.headers["location"] == f"/v1/webhooks/{hook['id']}"
        [listed] = client.get("/v1/webhooks").json()["items"]
        assert listed["id"] == hook["id"] and "secret" not in listed

        image_id = client.post("/v1/images", content=_jpeg(3007)).json()["id"]

        def delivered() -> list[dict[str, Any]] | None:
            items = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]
            return (
                items
                if len(items) == 4 and all(d["status"] == "delivered" for d in items)
                else None
            )

        deliveries = wait_for(delivered, what="4 deliveries", timeout_s=TIMEOUT_S)

    assert len(receiver.requests) == 4
    bodies = {}
    for headers, body in receiver.requests:
        _verify(hook["secret"], headers, body)
        document = json.loads(body)
        assert headers["imgflow-event"] == document["type"]
        assert headers["imgflow-delivery"] == document["id"]
        assert headers["content-type"] == "application/json"
        assert document["data"]["image_id"] == image_id
        bodies[document["type"], document["data"]["stage"]] = document
    assert set(bodies) == {("image.ready", None)} | {("stage.done", s) for s in STAGES}
    assert bodies["image.ready", None]["data"]["status"] == "ready"
    assert {d["id"] for d in deliveries} == {h["imgflow-delivery"] for h, _ in receiver.requests}
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in deliveries)


def test_a_failing_receiver_gets_the_delivery_on_a_later_attempt(
    system: LocalSystem, receiver: Receiver
) -> None:
    receiver.script.extend([500, 500])  # then 200
    with httpx.Client(base_url=system.api_url, headers=_tenant_headers(system)) as client:
        hook = client.post("/v1/webhooks", json={"url": receiver.url}).json()
        client.post("/v1/images", content=_jpeg(3008))

        def delivered() -> dict[str, Any] | None:
            items = client.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]
            return items[0] if items and items[0]["status"] == "delivered" else None

        delivery = wait_for(delivered, what="a delivery", timeout_s=TIMEOUT_S)

    assert delivery["attempts"] == 3 and delivery["type"] == "image.ready"
    assert len(receiver.requests) == 3
    # every attempt is the same delivery: one id, one body, each validly signed
    assert {h["imgflow-delivery"] for h, _ in receiver.requests} == {delivery["id"]}
    assert len({body for _, body in receiver.requests}) == 1
    for headers, body in receiver.requests:
        _verify(hook["secret"], headers, body)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.com/hook"}, "bad-webhook-url"),
        ({"url": "not a url"}, "bad-webhook-url"),
        ({"url": "http://user:pw@example.com/"}, "bad-webhook-url"),
        ({"url": "http://example.com:99999/"}, "bad-webhook-url"),
        ({"url": "https://example.com/", "events": ["image.exploded"]}, "unknown-webhook-event"),
        ({"url": "https://example.com/", "events": []}, "unknown-webhook-event"),
        ({"events": ["image.ready"]}, "invalid-request"),
    ],
)
def test_bad_webhooks_are_refused_and_nothing_is_stored(
    system: LocalSystem, body: dict[str, Any], code: str
) -> None:
    with httpx.Client(base_url=system.api_url, headers=_tenant_headers(system)) as client:
        response = client.post("/v1/webhooks", json=body)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code
        assert client.get("/v1/webhooks").json()["items"] == []


def test_webhooks_belong_to_their_tenant_and_can_be_deleted(system: LocalSystem) -> None:
    owner = httpx.Client(base_url=system.api_url, headers=_tenant_headers(system))
    stranger = httpx.Client(base_url=system.api_url, headers=_tenant_headers(system))
    with owner, stranger:
        hook = owner.post("/v1/webhooks", json={"url": "https://example.com/h"}).json()
        path = f"/v1/webhooks/{hook['id']}"
        assert stranger.get("/v1/webhooks").json()["items"] == []
        for response in (stranger.delete(path), stranger.get(f"{path}/deliveries")):
            assert response.status_code == 404
            assert response.json()["code"] == "webhook-not-found"
        assert owner.delete(path).status_code == 204
        assert owner.delete(path).status_code == 404
        assert owner.get("/v1/webhooks").json()["items"] == []


# --- the parts, without servers ----------------------------------------------------------


def _event(n: int) -> Event:
    return Event(n, "stage.done", uuid.UUID(int=1), uuid.UUID(int=2), "hashing", "done", None, "")


def test_a_subscriber_that_falls_behind_is_dropped_not_waited_for() -> None:
    subscription = Subscription(uuid.UUID(int=1), None, queue_size=2)
    assert subscription.offer(_event(1)) and subscription.offer(_event(2))
    assert not subscription.offer(_event(3))
    assert asyncio.run(subscription.get()) is Signal.LAGGED  # the backlog is dropped
    assert not subscription.offer(_event(4))


def test_event_patterns() -> None:
    assert check_events(None) == ["image.ready", "image.failed"]
    assert check_events(["stage.*", "image.*", "*", "stage.failed"]) == [
        "stage.*",
        "image.*",
        "*",
        "stage.failed",
    ]
    for bad in (["stage"], ["thumbnails.*"], ["image.ready.*"], ["*.*"]):
        with pytest.raises(InvalidWebhook):
            check_events(bad)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/h", "http://10.1.2.3/h", "http://[::1]/h", "http://169.254.169.254/"]
)
def test_private_destinations_are_refused_when_not_allowed(url: str) -> None:
    with pytest.raises(InvalidWebhook) as refused:
        asyncio.run(check_destination(url, allow_private=False))
    assert refused.value.code == "webhook-host-not-allowed"
    asyncio.run(check_destination(url, allow_private=True))


def test_private_destinations_are_refused_by_default() -> None:
    assert ApiSettings.model_fields["webhook_allow_private"].default is False
    # A name is resolved first: localhost is loopback whatever it is called.
    with pytest.raises(InvalidWebhook) as refused:
        asyncio.run(check_destination("http://localhost:8080/hook", allow_private=False))
    assert refused.value.code == "webhook-host-not-allowed"
    asyncio.run(check_destination("https://93.184.215.14/hook", allow_private=False))

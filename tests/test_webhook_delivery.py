"""The webhook sender against real receivers on loopback: the API itself makes no
outbound call, two sender replicas never deliver one delivery twice, answers that will
never change fail at once while the rest are retried, and one tenant's thousands of
events do not starve another tenant's deliveries."""

from __future__ import annotations

import ast
import ssl
import uuid
from collections import Counter
from pathlib import Path

import pytest
import trustme

import imgflow_upload_api
from imgflow_localstack.system import LocalSystem
from tests.support import encode, photo_like, query, wait_for
from tests.webhook_support import (
    Receiver,
    SenderThread,
    Tenant,
    hang,
    ok,
    queue_deliveries,
    status,
    tenant,
)

HTTP_CLIENTS = {"httpx", "requests", "urllib3", "aiohttp", "http.client", "urllib.request"}
# The API's outbound peer is S3 alone: the upload's PUT, the streamed download, and the
# presigned upload's read-back (urllib3's errors are the minio client's read errors).
S3_MODULES = {"uploads/s3_writer.py", "images/streaming.py", "uploads/presigned/verification.py"}


pytestmark = pytest.mark.usefixtures("own_sender")


def test_the_api_makes_no_outbound_call_the_sender_delivers(
    database_url: str, account: Tenant
) -> None:
    with Receiver(ok).running() as receiver:
        hook = account.register(receiver.url, ["image.ready"])
        body = encode(photo_like(160, 120, seed=4242), "JPEG")
        image_id = account.api.post("/v1/images", content=body).json()["id"]
        wait_for(
            lambda: account.api.get(f"/v1/images/{image_id}").json()["status"] == "ready",
            what="the image ready",
        )
        # Queued with the event, in its transaction; with no sender running, nothing went.
        [queued] = account.deliveries(hook["id"])
        assert queued["status"] == "pending" and queued["attempts"] == 0
        assert receiver.arrivals == []
        with SenderThread(database_url):
            wait_for(lambda: receiver.arrivals, what="the delivery")
    assert receiver.arrivals[0].body["data"]["image_id"] == image_id


def test_the_api_package_imports_no_http_client_and_no_sender() -> None:
    """No module of the API but its S3 ones imports an HTTP client."""
    root = Path(imgflow_upload_api.__file__).parent
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name in HTTP_CLIENTS or name.startswith("imgflow_webhook_sender"):
                    found.setdefault(str(path.relative_to(root)), set()).add(name)
    assert set(found) <= S3_MODULES, found
    assert not (root / "webhooks" / "dispatch.py").exists()


def test_two_replicas_never_deliver_one_delivery_twice(database_url: str, account: Tenant) -> None:
    with Receiver(ok).running() as receiver:
        hooks = [account.register(receiver.url) for _ in range(3)]
        for hook in hooks:
            queue_deliveries(database_url, hook["id"], 100)
        with SenderThread(database_url), SenderThread(database_url):
            wait_for(lambda: len(receiver.arrivals) >= 300, what="300 deliveries")
            for hook in hooks:
                wait_for(
                    lambda h=hook: all(
                        d["status"] == "delivered" for d in account.deliveries(h["id"])
                    ),
                    what="every delivery recorded",
                )
    received = Counter(a.body["id"] for a in receiver.arrivals)
    assert len(received) == 300 and set(received.values()) == {1}


def _one_delivery(database_url: str, account: Tenant, url: str) -> str:
    hook = account.register(url)
    queue_deliveries(database_url, hook["id"], 1)
    return hook["id"]  # type: ignore[no-any-return]


def _settled(account: Tenant, webhook_id: str, *, until: str | None = None) -> dict:
    """The delivery once its first attempt is recorded (a recorded attempt leaves an error
    or a final status), or once its status is ``until``."""

    def settled() -> dict | None:
        d = account.deliveries(webhook_id)[0]
        if until is not None:
            return d if d["status"] == until else None
        return d if d["attempts"] >= 1 and (d["status"] != "pending" or d["last_error"]) else None

    return wait_for(settled, what=f"the delivery {until or 'attempted'}")


@pytest.mark.parametrize("code", [410, 404, 400, 301])
def test_answers_that_will_not_change_fail_at_once(
    database_url: str, account: Tenant, code: int
) -> None:
    with Receiver(status(code)).running() as receiver, SenderThread(database_url):
        webhook_id = _one_delivery(database_url, account, receiver.url)
        delivery = _settled(account, webhook_id)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert delivery["last_status_code"] == code and len(receiver.arrivals) == 1


def test_5xx_and_429_are_retried_and_429_waits_as_asked(database_url: str, account: Tenant) -> None:
    answers = iter([(503, {}), (429, {"Retry-After": "1"}), (204, {})])
    with (
        Receiver(lambda _: next(answers)).running() as receiver,
        SenderThread(database_url, webhook_retry_base_s=0.05, webhook_retry_cap_s=5),
    ):
        webhook_id = _one_delivery(database_url, account, receiver.url)
        delivery = _settled(account, webhook_id, until="delivered")
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
    # Retry-After: 1 was honoured (the sender's own second wait would be at most 0.1 s).
    assert receiver.arrivals[2].at - receiver.arrivals[1].at >= 1.0


def test_a_certificate_that_does_not_verify_fails_at_once(
    database_url: str, account: Tenant
) -> None:
    authority = trustme.CA()  # trusted by nobody but itself
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(tls)
    with Receiver(ok, tls=tls).running() as receiver, SenderThread(database_url):
        webhook_id = _one_delivery(database_url, account, receiver.url)
        delivery = _settled(account, webhook_id)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert "certificate did not verify" in delivery["last_error"]


def test_a_host_that_is_not_allowed_fails_at_once_and_hears_nothing(
    database_url: str, account: Tenant
) -> None:
    with Receiver(ok).running() as receiver:
        # Registered while the deployment allowed private hosts; refused at the attempt.
        webhook_id = _one_delivery(database_url, account, receiver.url)
        with SenderThread(database_url, webhook_allow_private=False):
            delivery = _settled(account, webhook_id)
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert "private, loopback or link-local" in delivery["last_error"]
    assert receiver.arrivals == []


def test_an_unresolvable_host_is_retried_then_failed_past_the_bound(
    database_url: str, account: Tenant
) -> None:
    retried = _one_delivery(database_url, account, "http://imgflow-gone.invalid/hook")
    # a minute between attempts: the first attempt's outcome is seen alone
    with SenderThread(
        database_url,
        webhook_unresolvable_grace_s=3600,
        webhook_retry_base_s=60,
        webhook_retry_cap_s=60,
    ):
        first = _settled(account, retried)
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert "cannot resolve" in first["last_error"]
    # due again now (as an operator would), under a bound the outage has passed
    query(
        database_url,
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE webhook_id = $1",
        uuid.UUID(retried),
    )
    with SenderThread(database_url, webhook_unresolvable_grace_s=0):
        given_up = _settled(account, retried, until="failed")
    assert given_up["attempts"] == 2 and "(for " in given_up["last_error"]


def test_one_tenants_thousands_of_events_do_not_starve_another(
    system: LocalSystem, database_url: str, account: Tenant
) -> None:
    """Tenant A: 4,000 deliveries to two endpoints (two host names) of a receiver that
    never answers. Tenant B: 20 deliveries queued after them. With 8 attempts per process
    and 4 per tenant, A holds at most 4 and B's all arrive while A's still hang (an
    attempt's limit is 120 s here, so B could not get in by A's timing out)."""
    with (
        tenant(system) as other,
        Receiver(hang).running() as hanging,
        Receiver(ok).running() as fast,
    ):
        for url in (hanging.url, hanging.url.replace("127.0.0.1", "localhost")):
            queue_deliveries(database_url, account.register(url)["id"], 2000)
        theirs = other.register(fast.url)["id"]
        queue_deliveries(database_url, theirs, 20)
        with SenderThread(
            database_url,
            webhook_timeout_s=120,
            webhook_max_in_flight=8,
            webhook_per_endpoint=4,
            webhook_per_host=8,
            webhook_per_tenant=4,
        ):
            wait_for(lambda: len(fast.arrivals) == 20, what="the other tenant's deliveries")
            held = hanging.open
    assert 0 < held <= 4 and hanging.most_open <= 4
    attempts = query(
        database_url,
        "SELECT attempts FROM webhook_deliveries WHERE webhook_id = $1",
        uuid.UUID(theirs),
    )
    assert {r["attempts"] for r in attempts} == {1}

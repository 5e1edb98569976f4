"""One slow webhook receiver never delays deliveries to the others: a receiver that
accepts every request and never answers, beside one that answers at once. The hanging
one holds at most its endpoint's share of attempts, and no delivery to the other waits
for any of them to end (each arrives within one attempt's configured time limit, the
least it would have waited behind a hanging attempt)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from imgflow_localstack.system import LocalSystem
from imgflow_webhook_sender.settings import SenderSettings
from tests.support import bearer, encode, new_tenant, photo_like, wait_for

UPLOADS = 6


class _Receiver:
    """A real HTTP server; ``hang`` makes it hold every request unanswered until closed."""

    def __init__(self, hang: bool) -> None:
        self.arrivals: list[tuple[float, dict]] = []  # (wall-clock receipt, body)
        self.open = 0  # requests held unanswered right now
        self.most_open = 0
        self._release = threading.Event()
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.arrivals.append((time.time(), body))
                if hang:
                    with lock:
                        receiver.open += 1
                        receiver.most_open = max(receiver.most_open, receiver.open)
                    # Held until the sender gives up (it closes the connection) or the end.
                    while not receiver._release.wait(0.05) and not _closed(self.connection):
                        pass
                    with lock:
                        receiver.open -= 1
                    return
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    @contextlib.contextmanager
    def running(self) -> Iterator[_Receiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._release.set()
            self._server.shutdown()
            self._server.server_close()


def _closed(connection: socket.socket) -> bool:
    """The peer closed: readable, yet nothing to read."""
    readable, _, _ = select.select([connection], [], [], 0)
    return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""


def test_a_hanging_receiver_does_not_delay_the_others(system: LocalSystem) -> None:
    settings = SenderSettings()
    timeout_s = settings.webhook_timeout_s
    tenant = new_tenant(system, "webhooks")
    with (
        _Receiver(hang=True).running() as hanging,
        _Receiver(hang=False).running() as fast,
        httpx.Client(base_url=system.api_url, headers=bearer(tenant["api_key"])) as api,
    ):
        for receiver in (hanging, fast):
            created = api.post("/v1/webhooks", json={"url": receiver.url, "events": ["*"]})
            assert created.status_code == 201, created.text
        ids = []
        for seed in range(UPLOADS):
            body = encode(photo_like(200, 150, seed=700 + seed), "JPEG")
            ids.append(api.post("/v1/images", content=body).json()["id"])

        def every_outcome_delivered() -> bool:
            finals = {b["data"]["image_id"] for _, b in fast.arrivals if b["type"] == "image.ready"}
            return finals == set(ids)

        wait_for(every_outcome_delivered, timeout_s=120, what="image.ready of every upload")

    # The hanging receiver held attempts all along, never more than its endpoint's share...
    assert 0 < hanging.most_open <= settings.webhook_per_endpoint
    assert hanging.arrivals[0][0] < fast.arrivals[-1][0]
    # ...and no event for the other receiver waited for one of them to end: each arrived
    # within one attempt's time limit of its event (waiting behind a hanging attempt takes
    # at least that long).
    delays = [at - datetime.fromisoformat(b["created_at"]).timestamp() for at, b in fast.arrivals]
    print(
        f"\n{len(delays)} deliveries beside a hanging receiver: delay from event to receipt "
        f"p50 {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
        f"(webhook timeout {timeout_s} s)"
    )
    assert max(delays) < timeout_s, sorted(delays)[-5:]

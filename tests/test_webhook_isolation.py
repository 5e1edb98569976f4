"""One slow webhook receiver never delays deliveries to the others: measured with a
receiver that accepts every request and never answers, beside one that answers at once."""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from imgflow_localstack.system import LocalSystem
from imgflow_upload_api.settings import ApiSettings
from imgflow_upload_api.webhooks.dispatch import PER_WEBHOOK
from tests.support import bearer, encode, new_tenant, photo_like, wait_for

UPLOADS = 6


class _Receiver:
    """A real HTTP server; ``hang`` makes it hold every request unanswered until closed."""

    def __init__(self, hang: bool) -> None:
        self.arrivals: list[tuple[float, dict]] = []  # (wall-clock receipt, body)
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.arrivals.append((time.time(), body))
                if hang:
                    receiver._release.wait()
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


def test_a_hanging_receiver_does_not_delay_the_others(system: LocalSystem) -> None:
    timeout_s = ApiSettings().webhook_timeout_s
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

    # The hanging receiver held its attempts (at most PER_WEBHOOK at once) all along...
    assert 0 < len(hanging.arrivals) <= PER_WEBHOOK * (1 + 120 // timeout_s)
    assert hanging.arrivals[0][0] < fast.arrivals[-1][0]
    # ...and every event still reached the other receiver at once: far below the time an
    # attempt on the hanging one takes.
    delays = [at - datetime.fromisoformat(b["created_at"]).timestamp() for at, b in fast.arrivals]
    print(
        f"\n{len(delays)} deliveries beside a hanging receiver: delay from event to receipt "
        f"p50 {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
        f"(webhook timeout {timeout_s} s)"
    )
    assert max(delays) < min(1.0, timeout_s / 2), sorted(delays)[-5:]

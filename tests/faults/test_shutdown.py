"""SIGTERM, as Kubernetes and compose send it: the API drains the requests in flight, a
worker finishes its task or, killed past its grace, hands the job back for redelivery."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil

from imgflow_localstack.system import LocalSystem
from imgflow_upload_api.main import DRAIN_TIMEOUT_S
from tests.faults.support import frozen, image, stage_status, upload, wait_ready
from tests.support import encode, photo_like, query, wait_for

WORKERS = ("thumbnailer", "hasher", "deduper")
# upload-api main.py's DRAIN_TIMEOUT_S, plus the lifespan shutdown: the API's grace.
API_GRACE_S = 30


def _rendition_rows(database_url: str, image_id: str) -> int:
    [row] = query(
        database_url, "SELECT count(*) AS n FROM renditions WHERE image_id = $1::uuid", image_id
    )
    return row["n"]


def _outbox_rows(database_url: str, image_id: str) -> int:
    [row] = query(
        database_url,
        "SELECT count(*) AS n FROM outbox WHERE image_id = $1::uuid",
        image_id,
    )
    return row["n"]


def _refused(port: int) -> bool:
    """True once the port refuses new connections (nothing listens any more)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body, read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the response body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def _start_workers(system: LocalSystem, *names: str) -> None:
    for name in names or WORKERS:
        system.start_service(name)


def _bytes_unread_by(port: int, peer_ports: set[int]) -> int:
    """Bytes the peers sent to the server on ``port`` that it has not read yet.

    From the kernel's table (/proc/net/tcp): a frozen server reads nothing, so a request
    sent to it waits in its socket's receive queue, which says the request is in flight.
    """
    unread = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if local_port == port and remote_port in peer_ports:
            unread += int(fields[4].split(":")[1], 16)  # tx_queue:rx_queue
    return unread


def _api_ports_to(system: LocalSystem, port: int) -> set[int]:
    api = psutil.Process(system.service("api").child.pid)
    return {c.laddr.port for c in api.net_connections("tcp") if c.raddr and c.raddr.port == port}


def _send_head(sock: socket.socket, length: int, api_key: str) -> None:
    """Headers of a raw upload; returns once the handler has begun reading the body."""
    sock.sendall(
        (
            "POST /v1/images HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            "Content-Type: image/jpeg\r\n"
            f"Authorization: Bearer {api_key}\r\n"
            f"Content-Length: {length}\r\n"
            "Expect: 100-continue\r\n\r\n"
        ).encode()
    )
    # uvicorn answers 100 Continue when the handler first reads the body: from here on
    # the upload is a request in flight, not a connection still waiting to be served.
    assert sock.recv(1024).startswith(b"HTTP/1.1 100 ")


def _sigterm_and_wait_for_refusal(system: LocalSystem) -> float:
    """SIGTERM the API, as the kubelet does; the time until it refused new connections."""
    api = system.service("api")
    api.child.request_stop()
    term_at = time.monotonic()
    # Bounded by the drain (not a timing): refusing only after it would fail below.
    wait_for(
        lambda: _refused(system.api_port),
        timeout_s=DRAIN_TIMEOUT_S,
        what="the draining API to refuse new connections",
    )
    assert api.is_running(), "the API exited instead of draining"
    return term_at


def _check_exit(system: LocalSystem, term_at: float) -> float:
    """The API exits by itself within its grace, cleanly; returns when, after SIGTERM."""
    api = system.service("api")
    try:
        api.child.wait(API_GRACE_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the API did not exit within its {API_GRACE_S} s grace") from None
    exited_after = time.monotonic() - term_at
    # The log holds earlier tests' lives of this API too: read from this SIGTERM on.
    since_term = api.child.read_log().rsplit("Shutting down", 1)[-1]
    # The upload was answered after the drain began, and the app then shut down cleanly.
    assert '"POST /v1/images HTTP/1.1" 201' in since_term
    assert "Application shutdown complete" in since_term
    assert "Traceback" not in since_term, since_term[-3000:]
    assert api.child.returncode in (0, -signal.SIGTERM), "it was killed, not stopped"
    api.stop()  # reap it
    return exited_after


def _accepted_id(status: int, headers: dict[str, str], body: bytes) -> str:
    assert status == 201, body
    assert headers["connection"] == "close"  # no further requests on a draining server
    return json.loads(body)["id"]


def test_sigterm_drains_an_upload_still_streaming_and_refuses_new_connections(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str
) -> None:
    system = healthy
    payload = encode(photo_like(640, 480, seed=201), "JPEG")
    half = len(payload) // 2
    with socket.create_connection(("127.0.0.1", system.api_port), timeout=30) as sock:
        _send_head(sock, len(payload), system.api_key)
        sock.sendall(payload[:half])
        term_at = _sigterm_and_wait_for_refusal(system)
        refused_after = time.monotonic() - term_at
        sock.sendall(payload[half:])  # the rest of the body, after the SIGTERM
        image_id = _accepted_id(*_read_response(sock))
    answered_after = time.monotonic() - term_at
    exited_after = _check_exit(system, term_at)
    # Fair scheduling relays a job only while its queue has room, so the upload's jobs may
    # still wait in the outbox (durable) when this API has gone: the next one relays them,
    # and the image coming out ready with one set of renditions shows nothing lost or doubled.
    waiting = _outbox_rows(fault_db, image_id)
    print(
        f"\nAPI SIGTERM mid-body: refused new connections after {refused_after:.2f} s,"
        f" answered the upload 201 after {answered_after:.2f} s, exited after {exited_after:.2f} s,"
        f" {waiting} of its jobs still in the outbox"
    )

    system.start_service("api")
    body, _ = wait_ready(fault_api, image_id)
    assert body["byte_size"] == len(payload)
    assert _rendition_rows(fault_db, image_id) == 3


def test_sigterm_waits_for_an_upload_whose_s3_put_is_in_progress(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str
) -> None:
    system = healthy
    s3_port = system.stack.s3.ports.s3
    payload = encode(photo_like(640, 480, seed=204), "JPEG")
    with socket.create_connection(("127.0.0.1", system.api_port), timeout=60) as sock:
        with frozen(system.stack.s3):
            _send_head(sock, len(payload), system.api_key)
            sock.sendall(payload)
            wait_for(
                lambda: _bytes_unread_by(s3_port, _api_ports_to(system, s3_port)) > 0,
                timeout_s=20,
                what="the API's PUT of the original to reach the frozen S3",
            )
            term_at = _sigterm_and_wait_for_refusal(system)
            refused_after = time.monotonic() - term_at
        image_id = _accepted_id(*_read_response(sock))  # S3 answers again
    answered_after = time.monotonic() - term_at
    exited_after = _check_exit(system, term_at)
    waiting = _outbox_rows(fault_db, image_id)  # may wait there durably: see the test above
    print(
        f"\nAPI SIGTERM mid-PUT: refused new connections after {refused_after:.2f} s,"
        f" answered the upload 201 after {answered_after:.2f} s, exited after {exited_after:.2f} s,"
        f" {waiting} of its jobs still in the outbox"
    )

    system.start_service("api")
    body, _ = wait_ready(fault_api, image_id)
    assert body["byte_size"] == len(payload)
    assert _rendition_rows(fault_db, image_id) == 3


def test_a_worker_sigtermed_mid_task_finishes_it_before_exiting(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str
) -> None:
    system = healthy
    for name in WORKERS:
        system.stop_service(name)
    image_id = upload(fault_api, seed=202)
    worker = system.service("thumbnailer")
    with frozen(system.stack.s3):  # the task blocks reading the original: mid-task
        _start_workers(system, "thumbnailer")
        wait_for(
            lambda: stage_status(fault_api, image_id, "thumbnails") == "running",
            timeout_s=30,
            what="the thumbnail task to start",
        )
        worker.child.request_stop()  # SIGTERM: Celery's warm shutdown
        term_at = time.monotonic()
        wait_for(
            lambda: "Warm shutdown" in worker.child.read_log(),
            timeout_s=worker.spec.stop_timeout_s,  # the warm shutdown localstack grants
            what="the worker to begin its warm shutdown",
        )
        assert worker.is_running()
    # S3 answers again: the running task completes, and only then does the worker exit.
    code = worker.child.wait(30)
    exited_after = time.monotonic() - term_at
    assert code == 0, worker.child.log_tail()
    worker.stop()  # reap what is left of it

    thumbnails = image(fault_api, image_id)["stages"]["thumbnails"]
    assert thumbnails["status"] == "done"
    assert thumbnails["attempts"] == 1  # finished in the warm shutdown, not redelivered
    assert _rendition_rows(fault_db, image_id) == 3
    print(f"\nworker SIGTERMed mid-task: finished it and exited {exited_after:.1f} s later")

    _start_workers(system)
    body, _ = wait_ready(fault_api, image_id)
    assert body["stages"]["thumbnails"]["attempts"] == 1
    assert _rendition_rows(fault_db, image_id) == 3


def test_a_worker_past_its_sigterm_grace_is_killed_and_its_job_redelivered(
    healthy: LocalSystem, fault_api: httpx.Client, fault_db: str
) -> None:
    system = healthy
    for name in WORKERS:
        system.stop_service(name)
    image_id = upload(fault_api, seed=203)
    worker = system.service("thumbnailer")
    with frozen(system.stack.s3):  # the task cannot finish within the grace
        _start_workers(system, "thumbnailer")
        wait_for(
            lambda: stage_status(fault_api, image_id, "thumbnails") == "running",
            timeout_s=30,
            what="the thumbnail task to start",
        )
        worker.stop(grace_s=2)  # SIGTERM, 2 s of warm shutdown, then SIGKILL to the group
        assert "Warm shutdown" in worker.child.read_log()
        assert worker.child.returncode == -signal.SIGKILL
        assert stage_status(fault_api, image_id, "thumbnails") == "running"
    _start_workers(system, "thumbnailer")
    back_at = time.monotonic()
    # The job was never acked: the broker redelivers it once its visibility timeout
    # (20 s here) passes, or the sweeper re-enqueues it (running > 20 s).
    wait_for(
        lambda: stage_status(fault_api, image_id, "thumbnails") == "done",
        timeout_s=60,
        what="the handed-back job to be done",
    )
    print(
        f"\nworker killed past its grace: job done {time.monotonic() - back_at:.1f} s after restart"
    )
    _start_workers(system, "hasher", "deduper")

    body, _ = wait_ready(fault_api, image_id)
    assert body["stages"]["thumbnails"]["attempts"] >= 2
    assert _rendition_rows(fault_db, image_id) == 3

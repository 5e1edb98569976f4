"""Concurrent upload clients: each takes the next image and POSTs it, until none are left.

A closed loop (each client sends its next upload when the last is answered), so the
clients measure how fast the API accepts, not how fast we can queue requests. One asyncio
loop drives every client with httpx; files are read on a thread so a read never stalls
the clients (they are in the page cache after generation, a read is about a millisecond).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class Upload:
    index: int
    # Seconds after the first upload started, and how long the answer took.
    started_s: float
    latency_s: float
    status: int
    byte_size: int
    image_id: str | None
    # The problem `code` (or exception) of a refused upload.
    error: str | None = None


async def upload_all(
    api_url: str,
    headers: dict[str, str],
    paths: Sequence[Path],
    clients: int,
    t0: float,
    on_accepted: Callable[[str], None] = lambda _: None,
) -> list[Upload]:
    """Upload every path once from ``clients`` concurrent clients; ``t0`` is perf_counter's
    origin for ``started_s``; ``headers`` carry the API key. ``on_accepted`` is called
    with each new image id."""
    pending = iter(enumerate(paths))
    results: list[Upload] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=api_url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def one_client() -> None:
            for index, path in pending:  # shared iterator: each item goes to one client
                data = await asyncio.to_thread(path.read_bytes)
                upload = await _send(client, index, data, t0)
                if upload.image_id is not None:
                    on_accepted(upload.image_id)
                results.append(upload)

        await asyncio.gather(*(one_client() for _ in range(clients)))
    return sorted(results, key=lambda u: u.index)


async def _send(client: httpx.AsyncClient, index: int, data: bytes, t0: float) -> Upload:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/v1/images", content=data, headers={"Content-Type": "image/jpeg"}
        )
    except httpx.HTTPError as exc:
        took = time.perf_counter() - started
        return Upload(index, started - t0, took, 0, len(data), None, type(exc).__name__)
    took = time.perf_counter() - started
    if response.status_code == 201:
        image_id = response.json()["id"]
        return Upload(index, started - t0, took, 201, len(data), image_id)
    try:
        code = response.json().get("code", response.reason_phrase)
    except ValueError:
        code = response.reason_phrase
    return Upload(index, started - t0, took, response.status_code, len(data), None, str(code))

"""Helpers for the cross-service tests: realistic images, waiting on events, direct reads."""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import asyncpg
import httpx
from PIL import Image, ImageDraw, ImageFilter

from imgflow_contracts.queues import Stage
from imgflow_runtime.db.pool import connect
from imgflow_runtime.db.tenants import DEFAULT_TENANT_ID

T = TypeVar("T")


class System(Protocol):
    """What the admin CLI needs of a system: its processes' IMGFLOW_* variables."""

    @property
    def env(self) -> Mapping[str, str]: ...


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Gradients, shapes and grain: compresses like a photograph, unlike flat colour."""
    base = Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize((width, height)),
            Image.radial_gradient("L").resize((width, height)),
            Image.linear_gradient("L").rotate(90 + seed).resize((width, height)),
        ],
    )
    draw = ImageDraw.Draw(base)
    for i in range(12):
        x, y = (seed * 97 + i * 131) % width, (seed * 53 + i * 71) % height
        r = 20 + (i * 37 + seed) % max(21, min(width, height) // 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=((i * 40) % 256, (seed * 7) % 256, 90))
    grain = Image.effect_noise((width, height), 24 + seed % 8).convert("RGB")
    return Image.blend(base, grain, 0.15).filter(ImageFilter.SMOOTH)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def wait_for(probe: Callable[[], T | None], *, timeout_s: float = 60, what: str = "condition") -> T:
    """Poll ``probe`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def every_stage_finished(image: dict[str, Any]) -> bool:
    """Every stage done or failed. (An image's ``status`` is ``failed`` as soon as one
    stage fails, while others may still be pending: not a moment to assert on them.)"""
    return all(s["status"] in ("done", "failed") for s in image["stages"].values())


def query(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """One query on a fresh connection: tests read the database as an operator would."""

    async def run() -> list[dict[str, Any]]:
        conn = await connect(database_url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def db_runner(
    database_url: str,
    open_connection: Callable[[str], Awaitable[asyncpg.Connection]] = asyncpg.connect,
) -> Callable[..., Any]:
    """``run(fn, *args)``: ``await fn(conn, *args)`` on a fresh connection, from sync test
    code (``imgflow_runtime.db.pool.connect`` for the API's codecs, jsonb as objects)."""

    def run(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        async def go() -> T:
            conn = await open_connection(database_url)
            try:
                return await fn(conn, *args)
            finally:
                await conn.close()

        return asyncio.run(go())

    return run


def admin_cli(system: System, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``imgflow-admin ARGS`` against ``system``, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "imgflow_runtime.admin_cli", *args],
        env={**os.environ, **system.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def new_tenant(system: System, prefix: str = "tenant") -> dict[str, Any]:
    """A new tenant made with the CLI: ``{"tenant", "key_id", "api_key"}``."""
    done = admin_cli(system, "tenants", "create", f"{prefix}-{uuid.uuid4().hex[:12]}")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def upload_photos(
    api_url: str, tenant: dict[str, Any], seeds: range, bulk: bool = False
) -> list[str]:
    """One small photo-like JPEG per seed uploaded by ``tenant`` (as bulk work if asked),
    each answered 201; their ids in order."""
    ids = []
    with httpx.Client(base_url=api_url, timeout=30, headers=bearer(tenant["api_key"])) as client:
        for seed in seeds:
            response = client.post(
                "/v1/images",
                content=encode(photo_like(64, 48, seed), "JPEG"),
                params={"bulk": "true"} if bulk else {},
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    return ids


def slow_body(data: bytes, release: threading.Event, timeout_s: float = 60) -> Iterator[bytes]:
    """A request body that sends its first bytes, then waits for ``release``: an upload in
    progress for as long as a test wants."""
    yield data[:100]
    assert release.wait(timeout_s), "the slow body was never released"
    yield data[100:]


async def image_with_stages(
    conn: asyncpg.Connection, statuses: Mapping[Stage, str]
) -> tuple[uuid.UUID, str]:
    """An image row of the default tenant (no object behind its key) with stage rows in
    ``statuses``, queued an hour ago; its id and object key."""
    image_id = uuid.uuid4()
    key = f"originals/test/{image_id}"
    await conn.execute(
        """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256)
           VALUES ($1, $2, $3, 'image/jpeg', 1000, $4)""",
        image_id,
        DEFAULT_TENANT_ID,
        key,
        secrets.token_hex(32),
    )
    await conn.executemany(
        """INSERT INTO image_stages (image_id, stage, status, queued_at)
           VALUES ($1, $2, $3, now() - interval '1 hour')""",
        [(image_id, stage.value, status) for stage, status in statuses.items()],
    )
    return image_id, key

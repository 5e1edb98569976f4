"""The upload path's PUT (imgflow_upload_api.uploads.s3_writer) against the session's real
SeaweedFS: bytes land as sent and read back through minio, the digest is checked and kept,
a wrong one or a short body stores nothing, and a dropped connection is retried.

With IMGFLOW_TEST_STORAGE=container the same tests run against an S3 container started by
testcontainers (tests/storage_backend.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import BinaryIO, TypeVar

import aiohttp
import pytest
from minio.credentials import Credentials

from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.ports import free_port
from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.uploads.s3_writer import CHUNK_BYTES, S3PutError, S3Writer
from tests.storage_backend import s3_container, wants_container

T = TypeVar("T")


@pytest.fixture(scope="module")
def settings(request: pytest.FixtureRequest) -> Iterator[CommonSettings]:
    """The session system's settings, or with IMGFLOW_TEST_STORAGE=container an S3
    container's (and then no local system is started)."""
    if not wants_container():
        yield request.getfixturevalue("system").settings()
        return
    with s3_container(CommonSettings()) as configured:
        yield configured


@pytest.fixture(scope="module")
def store(settings: CommonSettings) -> ObjectStore:
    return ObjectStore.from_settings(settings)


def _with_writer(
    settings: CommonSettings, work: Callable[[S3Writer], Awaitable[T]], endpoint: str = ""
) -> T:
    async def run() -> T:
        configured = settings.model_copy(update={"s3_endpoint": endpoint or settings.s3_endpoint})
        writer = S3Writer.from_settings(configured)
        try:
            return await work(writer)
        finally:
            await writer.close()

    return asyncio.run(run())


def _key() -> str:
    return f"test/s3-writer/{secrets.token_hex(6)}"


def _put(settings: CommonSettings, key: str, stream: BinaryIO, length: int, sha256: str) -> None:
    _with_writer(settings, lambda w: w.put(key, stream, length, "image/jpeg", sha256))


@pytest.mark.parametrize("size", [100_000, 3 * CHUNK_BYTES + 123])
def test_bytes_land_as_sent_and_s3_keeps_their_digest(
    settings: CommonSettings, store: ObjectStore, size: int
) -> None:
    data, key = os.urandom(size), _key()
    digest = hashlib.sha256(data).hexdigest()
    # Big bodies come from the spool's temporary file, small ones from memory.
    with tempfile.TemporaryFile() as spooled:
        spooled.write(data)
        _put(settings, key, spooled, size, digest)
    try:
        assert store.get_bytes(key) == data
        checksum = store.checksum(key)
        assert (checksum.size, checksum.sha256) == (size, digest)
    finally:
        store.delete(key)


def test_a_key_with_spaces_and_non_ascii_is_stored_under_that_name(
    settings: CommonSettings, store: ObjectStore
) -> None:
    data, key = b"x" * 1000, f"{_key()}/a b+c~é"
    _put(settings, key, io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())
    try:
        assert store.get_bytes(key) == data
    finally:
        store.delete(key)


def test_a_wrong_digest_is_refused_and_nothing_is_stored(
    settings: CommonSettings, store: ObjectStore
) -> None:
    data, key = os.urandom(50_000), _key()
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    with pytest.raises(S3PutError) as refused:
        _put(settings, key, io.BytesIO(data), len(data), wrong)
    assert 400 <= refused.value.status < 500
    assert not store.exists(key)


def test_a_body_shorter_than_declared_is_not_sent(
    settings: CommonSettings, store: ObjectStore
) -> None:
    data, key = b"y" * 1000, _key()
    with pytest.raises(ValueError, match="bytes"):
        _put(settings, key, io.BytesIO(data), 2000, hashlib.sha256(data).hexdigest())
    assert not store.exists(key)


def test_an_unreachable_s3_raises_after_its_retries(settings: CommonSettings) -> None:
    data = b"z" * 1000
    with pytest.raises(aiohttp.ClientConnectionError):
        _with_writer(
            settings,
            lambda w: w.put(_key(), io.BytesIO(data), 1000, "image/jpeg", "0" * 64),
            endpoint=f"127.0.0.1:{free_port()}",
        )


@contextlib.asynccontextmanager
async def _dropping_first_connection(target: str) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP relay to ``target`` that closes the first connection it accepts unanswered
    (as a server restarting, or a keep-alive connection it timed out, would)."""
    host, port = target.rsplit(":", 1)
    accepted: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        if len(accepted) == 1:
            await reader.readuntil(b"\r\n\r\n")  # the request began; drop it unanswered
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", accepted
    finally:
        server.close()


def test_a_dropped_connection_is_retried_and_the_bytes_land(
    settings: CommonSettings, store: ObjectStore
) -> None:
    data, key = os.urandom(20_000), _key()

    async def run() -> int:
        async with _dropping_first_connection(settings.s3_endpoint) as (endpoint, accepted):
            configured = settings.model_copy(update={"s3_endpoint": endpoint})
            writer = S3Writer.from_settings(configured)
            try:
                await writer.put(
                    key, io.BytesIO(data), len(data), "image/jpeg", hashlib.sha256(data).hexdigest()
                )
            finally:
                await writer.close()
            return len(accepted)

    connections = asyncio.run(run())
    try:
        assert connections == 2
        assert store.get_bytes(key) == data
    finally:
        store.delete(key)


def test_an_s3_that_stops_reading_times_out(settings: CommonSettings) -> None:
    """A server that accepts the connection and never reads: once the socket buffers are
    full the send waits, and the attempt's bound ends it."""
    data = os.urandom(32 * 1024 * 1024)  # more than loopback's socket buffers hold

    async def run() -> None:
        held: list[asyncio.StreamWriter] = []

        async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # never read, never answered

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        endpoint = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        # 600 s to wait for an answer, but the whole attempt bounded at ~1 s.
        writer = S3Writer(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_connect=5, sock_read=600)),
            endpoint,
            secure=False,
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            credentials=Credentials("access", "secret"),
            read_timeout_s=0.5,
            slowest_bytes_per_s=64 * 1024 * 1024,
        )
        try:
            with pytest.raises(TimeoutError):
                await writer.put(_key(), io.BytesIO(data), len(data), "image/jpeg", "0" * 64)
        finally:
            await writer.close()
            for held_writer in held:
                held_writer.close()
            server.close()

    started = time.monotonic()
    asyncio.run(run())
    assert time.monotonic() - started < 30

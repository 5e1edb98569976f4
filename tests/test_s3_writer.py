"""The upload path's PUT (imgflow_upload_api.uploads.s3_writer) against every S3 of
tests/s3_targets.py (SeaweedFS, moto, moto over TLS, your own): bytes land as sent and
read back through minio, the digest is checked (where the server checks) and kept, a
short body stores nothing. Against SeaweedFS: a dropped connection or a 5xx is retried
(twice, counted at a relay), a 4xx never, and an S3 that stops reading times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import BinaryIO, TypeVar

import aiohttp
import pytest
from minio.credentials import Credentials

from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.ports import free_port
from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.uploads.s3_writer import (
    CHUNK_BYTES,
    RETRY_PAUSES_S,
    S3PutError,
    S3Writer,
)
from tests.s3_targets import S3Target

T = TypeVar("T")


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
def test_bytes_land_as_sent_and_s3_keeps_their_digest(s3_target: S3Target, size: int) -> None:
    store, data, key = s3_target.store, os.urandom(size), _key()
    digest = hashlib.sha256(data).hexdigest()
    # Big bodies come from the spool's temporary file, small ones from memory.
    with tempfile.TemporaryFile() as spooled:
        spooled.write(data)
        _put(s3_target.settings, key, spooled, size, digest)
    try:
        assert store.get_bytes(key) == data
        checksum = store.checksum(key)
        assert (checksum.size, checksum.sha256) == (size, digest)
    finally:
        store.delete(key)


def test_a_key_with_spaces_and_non_ascii_is_stored_under_that_name(s3_target: S3Target) -> None:
    data, key = b"x" * 1000, f"{_key()}/a b+c~é"
    _put(s3_target.settings, key, io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())
    try:
        assert s3_target.store.get_bytes(key) == data
    finally:
        s3_target.store.delete(key)


def test_a_wrong_digest_is_refused_where_the_server_checks_and_nothing_is_stored(
    s3_target: S3Target,
) -> None:
    data, key = os.urandom(50_000), _key()
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    if not s3_target.checks_checksums:  # moto stores it: the hasher refuses such a server
        _put(s3_target.settings, key, io.BytesIO(data), len(data), wrong)
        assert s3_target.store.checksum(key).sha256 == wrong
        s3_target.store.delete(key)
        return
    with pytest.raises(S3PutError) as refused:
        _put(s3_target.settings, key, io.BytesIO(data), len(data), wrong)
    assert 400 <= refused.value.status < 500
    assert not s3_target.store.exists(key)


def test_a_body_shorter_than_declared_is_not_sent(s3_target: S3Target) -> None:
    data, key = b"y" * 1000, _key()
    with pytest.raises(ValueError, match="bytes"):
        _put(s3_target.settings, key, io.BytesIO(data), 2000, hashlib.sha256(data).hexdigest())
    assert not s3_target.store.exists(key)


def test_an_unreachable_s3_raises_after_its_retries(settings: CommonSettings) -> None:
    data = b"z" * 1000
    with pytest.raises(aiohttp.ClientConnectionError):
        _with_writer(
            settings,
            lambda w: w.put(_key(), io.BytesIO(data), 1000, "image/jpeg", "0" * 64),
            endpoint=f"127.0.0.1:{free_port()}",
        )


DROP = None  # a canned "answer" that closes the connection unanswered


def _answer(status: int, code: str) -> bytes:
    body = f"<Error><Code>{code}</Code><Message>from the relay</Message></Error>".encode()
    head = f"HTTP/1.1 {status} {code}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    return head.encode() + b"Content-Type: application/xml\r\n\r\n" + body


@contextlib.asynccontextmanager
async def _relay(target: str, first: list[bytes | None]) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP relay to ``target`` whose first connections each get the canned answer from
    ``first`` (after the whole request is read), or are dropped unanswered (DROP: as a
    server restarting, or a keep-alive connection it timed out, would); later ones pass
    through to the real S3. Yields its address and the connections it accepted."""
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
        if len(accepted) <= len(first):
            head = await reader.readuntil(b"\r\n\r\n")
            answer = first[len(accepted) - 1]
            if answer is not None:
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                writer.write(answer)
                await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", accepted
    finally:
        server.close()


def _put_through_relay(
    settings: CommonSettings, key: str, data: bytes, first: list[bytes | None]
) -> tuple[int, BaseException | None]:
    """PUT through a relay; the connections it accepted and what the PUT raised."""

    async def run() -> tuple[int, BaseException | None]:
        async with _relay(settings.s3_endpoint, first) as (endpoint, accepted):
            configured = settings.model_copy(update={"s3_endpoint": endpoint})
            writer = S3Writer.from_settings(configured)
            try:
                digest = hashlib.sha256(data).hexdigest()
                await writer.put(key, io.BytesIO(data), len(data), "image/jpeg", digest)
            except (S3PutError, aiohttp.ClientError) as exc:
                return len(accepted), exc
            finally:
                await writer.close()
            return len(accepted), None

    return asyncio.run(run())


@pytest.mark.parametrize(
    "first",
    [[DROP], [_answer(503, "SlowDown")], [_answer(500, "InternalError"), DROP]],
    ids=["dropped", "503", "500-then-dropped"],
)
def test_a_dropped_connection_or_a_5xx_is_retried_and_the_bytes_land(
    settings: CommonSettings, store: ObjectStore, first: list[bytes | None]
) -> None:
    data, key = os.urandom(20_000), _key()
    connections, raised = _put_through_relay(settings, key, data, first)
    try:
        assert raised is None
        assert connections == len(first) + 1  # each failure retried once, then through
        assert store.get_bytes(key) == data
    finally:
        store.delete(key)


def test_a_4xx_is_not_retried(settings: CommonSettings, store: ObjectStore) -> None:
    key = _key()
    connections, raised = _put_through_relay(
        settings, key, b"q" * 5000, [_answer(403, "AccessDenied")]
    )
    assert isinstance(raised, S3PutError)
    assert (raised.status, raised.code) == (403, "AccessDenied")
    assert connections == 1
    assert not store.exists(key)


def test_a_5xx_that_persists_is_given_up_after_the_retries(
    settings: CommonSettings, store: ObjectStore
) -> None:
    key = _key()
    attempts = len(RETRY_PAUSES_S) + 1
    connections, raised = _put_through_relay(
        settings, key, b"r" * 5000, [_answer(503, "SlowDown")] * (attempts + 1)
    )
    assert isinstance(raised, S3PutError) and raised.status == 503
    assert connections == attempts
    assert not store.exists(key)


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
    # Ended by the attempts' bound, not by the 600 s configured for an answer.
    assert time.monotonic() - started < 600

"""PUT an upload's bytes to S3 from the event loop, signed with the SHA-256 it already has.

The API used to hand each PUT to minio-py in a worker thread. For a small upload that cost
~0.8 ms of CPU per PUT (the thread hop, the GIL passed back and forth while urllib3 sends
and reads, minio's request building); with aiohttp on the loop it is ~0.45 ms, and
the API's CPU per 100 KB upload fell by about a third with the relay's change beside it
(docs/performance/end-to-end.md, issue 16). Only this one request moved: presigning,
multipart uploads, reads and deletes stay on minio (imgflow_runtime.storage), as do the workers.

No SigV4 code lives here: requests are signed by minio's own signer. The payload hash
signed is the digest the API computed while receiving the body (minio-py would hash the
body again: ~2 ms per 12 MP photo), and ``x-amz-checksum-sha256`` asks S3 to verify the
bytes against it (a mismatch is refused with BadDigest, never stored: SeaweedFS checks
only this header, not the signed payload hash) and to keep it for the hasher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import BinaryIO
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

import aiohttp
from minio.credentials import Credentials
from minio.signer import sign_v4_s3
from yarl import URL

from imgflow_contracts.settings import CommonSettings
from imgflow_runtime.storage import checksum_headers, ssl_context

log = logging.getLogger(__name__)

# Bodies up to this size go as one bytes object; larger ones are read and sent a chunk
# at a time, so a 50 MB upload never has a second copy in memory.
CHUNK_BYTES = 1024 * 1024
# As the minio client's urllib3 pool was set up (storage.py): two quick retries on a
# dropped connection or a 5xx, the first at once, then after a short pause.
RETRY_PAUSES_S = (0.0, 0.2)
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
# aiohttp bounds connecting and each wait for the answer, not the sending: an S3 that
# stops reading would hold the upload forever (minio's socket timeout covered sends).
# So each attempt is bounded as a whole: the read timeout, plus the body at this rate,
# far below any link between an API and its S3.
SLOWEST_BYTES_PER_S = 1024 * 1024


class S3PutError(Exception):
    """S3 refused the PUT: its HTTP status and the error code and message it gave."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"S3 answered {status} {code}: {message}")
        self.status = status
        self.code = code


class S3Writer:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        secure: bool,
        bucket: str,
        region: str,
        credentials: Credentials,
        read_timeout_s: float = 60.0,
        slowest_bytes_per_s: float = SLOWEST_BYTES_PER_S,
    ) -> None:
        self._session = session
        self._read_timeout_s = read_timeout_s
        self._slowest_bytes_per_s = slowest_bytes_per_s
        self._base = f"{'https' if secure else 'http'}://{endpoint}/{quote(bucket)}/"
        self._host = endpoint
        self._region = region
        self._credentials = credentials

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> S3Writer:
        """Must be called with an event loop running (the session binds to it)."""
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.s3_max_connections,
                # HTTPS trusts what the minio client trusts (IMGFLOW_S3_CA_BUNDLE).
                ssl=ssl_context(settings),
            ),
            timeout=aiohttp.ClientTimeout(
                sock_connect=settings.s3_connect_timeout_s, sock_read=settings.s3_read_timeout_s
            ),
            # The signature covers the headers it names; the session adds none of its own
            # that S3 would check, and reads no proxy settings from the environment.
            trust_env=False,
        )
        credentials = Credentials(settings.s3_access_key, settings.s3_secret_key.get_secret_value())
        return cls(
            session,
            settings.s3_endpoint,
            settings.s3_secure,
            settings.s3_bucket,
            settings.s3_region,
            credentials,
            read_timeout_s=settings.s3_read_timeout_s,
        )

    async def put(
        self, key: str, stream: BinaryIO, length: int, content_type: str, sha256: str
    ) -> None:
        """Store ``length`` bytes of ``stream`` (read from its start, again on a retry) under
        ``key``; raises S3PutError when S3 refuses, aiohttp.ClientError when it cannot be
        reached, TimeoutError when an attempt outlasts its bound (SLOWEST_BYTES_PER_S)."""
        url = self._base + quote(key, safe="/~")
        for attempt, pause_s in enumerate((*RETRY_PAUSES_S, None)):
            try:
                await self._put_once(url, stream, length, content_type, sha256)
                return
            except (aiohttp.ClientConnectionError, S3PutError) as exc:
                refused = isinstance(exc, S3PutError) and exc.status not in _RETRY_STATUSES
                if refused or pause_s is None:
                    raise
                log.info("S3 PUT of %s failed (%s); retry %d", key, exc, attempt + 1)
                await asyncio.sleep(pause_s)

    async def _put_once(
        self, url: str, stream: BinaryIO, length: int, content_type: str, sha256: str
    ) -> None:
        date = datetime.now(UTC).replace(tzinfo=None)
        headers = sign_v4_s3(
            method="PUT",
            url=urlsplit(url),
            region=self._region,
            headers={
                "Host": self._host,
                "Content-Type": content_type,
                "Content-Length": str(length),
                "x-amz-date": date.strftime("%Y%m%dT%H%M%SZ"),
                "x-amz-content-sha256": sha256,
                **checksum_headers(sha256),
            },
            credentials=self._credentials,
            content_sha256=sha256,
            date=date,
        )
        stream.seek(0)
        body: bytes | AsyncIterator[bytes]
        if length <= CHUNK_BYTES:
            body = stream.read(length)
            if len(body) != length:
                raise ValueError(f"the body is {len(body)} bytes, not {length}")
        else:
            body = _chunks(stream, length)
        bound = aiohttp.ClientTimeout(
            total=self._read_timeout_s + length / self._slowest_bytes_per_s,
            sock_connect=self._session.timeout.sock_connect,
            sock_read=self._session.timeout.sock_read,
        )
        async with self._session.put(
            URL(url, encoded=True), data=body, headers=headers, timeout=bound
        ) as reply:
            if reply.status < 300:
                await reply.read()  # the connection goes back to the pool for reuse
                return
            raise _error(reply.status, await reply.read())

    async def close(self) -> None:
        await self._session.close()


async def _chunks(stream: BinaryIO, length: int) -> AsyncIterator[bytes]:
    # Reads from the spool's memory or its temporary file (page cache) take microseconds
    # per megabyte; aiohttp waits for the socket to drain between chunks.
    left = length
    while left > 0:
        chunk = stream.read(min(CHUNK_BYTES, left))
        if not chunk:
            raise ValueError(f"the body ended {left} bytes short of {length}")
        left -= len(chunk)
        yield chunk


def _error(status: int, body: bytes) -> S3PutError:
    """S3's XML error (``<Error><Code>..</Code><Message>..</Message></Error>``), if any."""
    try:
        root = ElementTree.fromstring(body)
        return S3PutError(status, root.findtext("Code") or "", root.findtext("Message") or "")
    except ElementTree.ParseError:
        return S3PutError(status, "", body[:200].decode("utf-8", "replace"))

"""Receive an upload body chunk by chunk: count, hash and buffer it without blocking.

SHA-256 is updated as each chunk arrives (hashlib releases the GIL for large chunks),
so the checksum is ready the moment the last byte is in. Bodies stay in memory up to a
threshold and roll over to a temporary file beyond it.
"""

from __future__ import annotations

import hashlib
import tempfile
from typing import BinaryIO

from imgflow_upload_api.uploads.formats import HEAD_BYTES


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the body exceeds the limit of {limit} bytes")
        self.limit = limit


class SpooledBody:
    def __init__(self, max_bytes: int, memory_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.memory_bytes = memory_bytes
        self.size = 0
        self.head = b""
        self._hash = hashlib.sha256()
        self._file: BinaryIO = tempfile.SpooledTemporaryFile(max_size=memory_bytes)  # noqa: SIM115

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.size + len(chunk) > self.max_bytes:
            raise BodyTooLarge(self.max_bytes)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self._hash.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    @property
    def in_memory(self) -> bool:
        """Whether the body is still held in memory (not rolled over to a file)."""
        return self.size <= self.memory_bytes

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def rewound(self) -> BinaryIO:
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()

"""An upload's bytes, from memory or from a file, sent whole or as a range in chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from imgflow_client.files import HEAD_BYTES, content_type_of

CHUNK = 256 * 1024
# Bodies up to this go in one piece (cheapest); larger ones stream, with progress.
WHOLE_BELOW = 1024 * 1024

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Body:
    size: int
    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def of(cls, source: bytes | str | Path) -> Body:
        if isinstance(source, bytes):
            return cls(len(source), data=source)
        path = Path(source)
        return cls(path.stat().st_size, path=path)

    def read(self, offset: int = 0, length: int | None = None) -> bytes:
        length = self.size - offset if length is None else length
        if self.data is not None:
            return self.data[offset : offset + length]
        assert self.path is not None
        with self.path.open("rb") as f:
            f.seek(offset)
            return f.read(length)

    def head(self) -> bytes:
        return self.read(0, min(HEAD_BYTES, self.size))

    def content_type(self) -> str:
        return content_type_of(self.head())

    async def chunks(
        self, offset: int, length: int, progress: Progress | None
    ) -> AsyncIterator[bytes]:
        """The range in chunks, telling ``progress`` each chunk's size as it goes."""
        if self.data is not None:
            view = memoryview(self.data)
            for start in range(offset, offset + length, CHUNK):
                chunk = bytes(view[start : min(start + CHUNK, offset + length)])
                yield chunk
                if progress:
                    progress(len(chunk))
            return
        assert self.path is not None
        with self.path.open("rb") as f:
            f.seek(offset)
            left = length
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"{self.path} shrank while being uploaded")
                left -= len(chunk)
                yield chunk
                if progress:
                    progress(len(chunk))

"""A seekable, read-only file over an S3 object, fetched by ranged GETs as it is read.

Pillow reads an image header with small reads and seeks (TIFF's directory may sit at the
end of the file), so this lets the same header check run on an object in S3 without
downloading it: wrap it in ``io.BufferedReader`` to turn small reads into few requests.
"""

from __future__ import annotations

import io

from imgflow_runtime.storage import ObjectStore, StoredObject


class ObjectReader(io.RawIOBase):
    def __init__(self, store: ObjectStore, stored: StoredObject) -> None:
        self._store = store
        self._stored = stored
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._stored.size}
        position = base[whence] + offset
        if position < 0:
            raise OSError(f"negative seek position {position}")
        self._position = position
        return position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        length = min(len(buffer), self._stored.size - self._position)
        if length <= 0:
            return 0
        data = self._store.read_range(
            self._stored.key, self._position, length, etag=self._stored.etag
        )
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_object(store: ObjectStore, stored: StoredObject, buffer_size: int) -> io.BufferedReader:
    return io.BufferedReader(ObjectReader(store, stored), buffer_size=buffer_size)

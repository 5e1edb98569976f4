"""Stream the ``file`` field of a multipart/form-data body into a sink, part by part.

Starlette's ``request.form()`` would buffer the whole body before we could apply the
size limit or hash it; python-multipart's push parser lets the bytes flow straight into
the same spool a raw upload uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

FILE_FIELD = "file"


class MalformedMultipart(Exception):
    pass


def boundary_of(content_type: str) -> bytes:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise MalformedMultipart("multipart/form-data needs a boundary parameter")
    return boundary


class _FilePartCollector:
    """Parser callbacks that pass the ``file`` part's bytes on and count such parts."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        self.file_parts = 0
        self.file_content_type: str | None = None
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._in_file = False

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._headers, self._in_file = {}, False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._in_file = options.get(b"name") == FILE_FIELD.encode()
        if self._in_file:
            self.file_parts += 1
            part_type = self._headers.get(b"content-type")
            self.file_content_type = part_type.decode("latin-1") if part_type else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        # Only the first file part is kept; a second one fails the whole request below.
        if self._in_file and self.file_parts == 1:
            self.sink(data[start:end])

    def on_end(self) -> None:
        self.ended = True


async def stream_file_field(
    content_type: str, chunks: AsyncIterator[bytes], sink: Callable[[bytes], None]
) -> str | None:
    """Feed the ``file`` part's bytes to ``sink``; returns that part's declared Content-Type.

    Raises MalformedMultipart when the body does not parse, has no ``file`` part, or has
    more than one. Errors raised by ``sink`` (a size limit) propagate unchanged.
    """
    collector = _FilePartCollector(sink)
    parser = MultipartParser(boundary_of(content_type), collector.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise MalformedMultipart(f"the multipart body does not parse: {exc}") from exc
    if not collector.ended:
        raise MalformedMultipart("the multipart body ends before its closing boundary")
    if collector.file_parts == 0:
        raise MalformedMultipart(f"the multipart body has no {FILE_FIELD!r} field")
    if collector.file_parts > 1:
        raise MalformedMultipart(f"the multipart body has more than one {FILE_FIELD!r} field")
    return collector.file_content_type

"""The server-sent events wire format (the WHATWG EventSource rules), line by line.

Comment lines (``: ping``) keep idle streams open and are dropped; ``data:`` lines are
joined with newlines; a blank line ends a message. imgflow's data is always one JSON
object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from imgflow_client.models import ServerEvent


@dataclass
class SseParser:
    """Feed lines (without their line ending); ``feed`` returns a message when one ends.

    ``last_id`` is the id to resume from (``Last-Event-ID``): the latest id seen, which
    per the standard persists across messages that carry none.
    """

    last_id: str | None = None
    retry_ms: int | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        text = "\n".join(data)
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = {"text": text}
        if not isinstance(parsed, dict):
            parsed = {"value": parsed}
        return ServerEvent(self.last_id, event, parsed)

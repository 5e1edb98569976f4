"""How to tell that an imgflow process is ready: its health endpoint, or a line in its log."""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from imgflow_localstack.child import Child

# No proxies: an HTTP(S)_PROXY in the developer's environment must not see 127.0.0.1 calls.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Readiness(Protocol):
    def is_ready(self, child: Child) -> bool: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class HttpOk:
    """Ready once GET ``url`` answers 200 (the API's /healthz)."""

    url: str

    def is_ready(self, child: Child) -> bool:
        with _direct.open(self.url, timeout=2) as response:
            return response.status == 200

    def describe(self) -> str:
        return f"GET {self.url} answering 200"


@dataclass(frozen=True)
class LogLine:
    """Ready once this run's log has a line matching ``pattern`` (Celery's "... ready.")."""

    pattern: str

    def is_ready(self, child: Child) -> bool:
        return re.search(self.pattern, child.read_log(), re.MULTILINE) is not None

    def describe(self) -> str:
        return f"a log line matching {self.pattern!r}"


# Celery's worker logs "<name>@<host> ready." once it consumes; \b keeps "already." out.
CELERY_READY = LogLine(r"\bready\.")


@dataclass(frozen=True)
class AllOf:
    """Ready once every part is (a worker: consuming, and its /metrics answering)."""

    parts: tuple[Readiness, ...]

    def is_ready(self, child: Child) -> bool:
        return all(part.is_ready(child) for part in self.parts)

    def describe(self) -> str:
        return " and ".join(part.describe() for part in self.parts)

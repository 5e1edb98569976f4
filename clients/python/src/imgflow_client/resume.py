"""Where a presigned upload in progress is remembered, so an interrupted one resumes.

A large file goes to storage in parts; if the process stops half way, the parts already
stored stay there until the upload expires (an hour). Remembering the ticket and the
parts sent lets the next attempt send only the rest. The library keeps this in memory
(resume within one client); the command keeps it in its state file (resume across runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class PendingUpload:
    """``ticket`` is the JSON of POST /v1/uploads' answer; ``parts_done`` the part numbers
    stored (1 for a single-PUT upload once its PUT succeeded)."""

    ticket: dict[str, Any]
    parts_done: set[int] = field(default_factory=set)


class ResumeStore(Protocol):
    def load(self, sha256: str) -> PendingUpload | None: ...

    def save(self, sha256: str, pending: PendingUpload) -> None: ...

    def forget(self, sha256: str) -> None: ...


class MemoryResumeStore:
    def __init__(self) -> None:
        self._pending: dict[str, PendingUpload] = {}

    def load(self, sha256: str) -> PendingUpload | None:
        pending = self._pending.get(sha256)
        return PendingUpload(pending.ticket, set(pending.parts_done)) if pending else None

    def save(self, sha256: str, pending: PendingUpload) -> None:
        self._pending[sha256] = PendingUpload(pending.ticket, set(pending.parts_done))

    def forget(self, sha256: str) -> None:
        self._pending.pop(sha256, None)

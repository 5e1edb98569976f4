"""What became of each file of an upload run, and the run's totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["uploaded", "existing", "skipped", "failed"]


@dataclass(frozen=True)
class FileOutcome:
    """``uploaded``: a new image; ``existing``: the server had these bytes already (no
    bytes sent when this command knew it); ``skipped``: not an image or empty;
    ``failed``: unreadable, or refused by the server (``reason`` says why)."""

    path: Path
    outcome: Outcome
    reason: str | None = None
    image_id: str | None = None
    sha256: str | None = None
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "outcome": self.outcome,
            "image_id": self.image_id,
            "reason": self.reason,
        }


@dataclass
class Processing:
    """With ``--wait``: how the run's images ended (per image, not per file)."""

    ready: int = 0
    failed: int = 0
    deleted: int = 0
    not_finished: int = 0
    # image id -> ids of its near-duplicates (CNN or pHash), for images uploaded now
    near_duplicates: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # image id -> stage errors


@dataclass
class RunSummary:
    files: list[FileOutcome]
    candidates: int
    seconds: float
    bytes_sent: int
    interrupted: bool = False
    fatal: str | None = None
    processing: Processing | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    @property
    def not_attempted(self) -> int:
        return self.candidates - len(self.files)

    @property
    def ok(self) -> bool:
        bad_processing = self.processing is not None and (
            self.processing.failed or self.processing.not_finished
        )
        return (
            not (self.count("failed") or self.fatal or self.interrupted or self.not_attempted)
            and not bad_processing
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "uploaded": self.count("uploaded"),
            "existing": self.count("existing"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "not_attempted": self.not_attempted,
            "interrupted": self.interrupted,
            "error": self.fatal,
            "bytes_sent": self.bytes_sent,
            "seconds": round(self.seconds, 3),
            "failures": [
                {"path": str(f.path), "reason": f.reason}
                for f in self.files
                if f.outcome == "failed"
            ],
            "skips": [
                {"path": str(f.path), "reason": f.reason}
                for f in self.files
                if f.outcome == "skipped"
            ],
        }
        if self.processing is not None:
            p = self.processing
            body.update(
                ready=p.ready,
                processing_failed=p.failed,
                deleted=p.deleted,
                not_finished=p.not_finished,
                near_duplicates=len(p.near_duplicates),
                near_duplicate_images=p.near_duplicates,
                processing_failures=p.failures,
            )
        return body

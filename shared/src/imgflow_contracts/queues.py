"""Queue and task names: the only coupling between the API and the workers."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """A processing concern; each has its own queue, task and deployable."""

    THUMBNAILS = "thumbnails"
    HASHING = "hashing"
    DEDUPE = "dedupe"

    @property
    def queue(self) -> str:
        return QUEUES[self]

    @property
    def task_name(self) -> str:
        return TASK_NAMES[self]


QUEUES: dict[Stage, str] = {
    Stage.THUMBNAILS: "thumbnails",
    Stage.HASHING: "hashing",
    Stage.DEDUPE: "dedupe",
}

TASK_NAMES: dict[Stage, str] = {
    Stage.THUMBNAILS: "imgflow.thumbnails.render",
    Stage.HASHING: "imgflow.hashing.analyse",
    Stage.DEDUPE: "imgflow.dedupe.check",
}

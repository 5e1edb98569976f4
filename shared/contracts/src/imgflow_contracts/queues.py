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


# The stages whose output a stage reads. The hasher and the deduper read the thumbnailer's
# analysis copy of the original (keys.analysis_key) instead of decoding the original again:
# entropy decoding a 3-5 MB JPEG costs 30-40 ms at any scale, and was 72 % of the hasher's
# CPU and half the deduper's. A stage is enqueued when the last of its predecessors in
# the same run settles (imgflow_runtime.stage_runner). The deduper also reads the hasher's
# pHash but does not wait for it: a check that finds none yet is marked phash_pending and
# redone by a later dedupe job (imgflow_deduper.checks). Making it wait is one entry here.
AFTER: dict[Stage, tuple[Stage, ...]] = {
    Stage.HASHING: (Stage.THUMBNAILS,),
    Stage.DEDUPE: (Stage.THUMBNAILS,),
}


def waits() -> list[tuple[Stage, Stage]]:
    """Every (stage, predecessor) pair of AFTER, for SQL that takes them as two arrays."""
    return [(stage, before) for stage, befores in AFTER.items() for before in befores]


def dependants(stage: Stage) -> list[Stage]:
    """Stages that may be enqueued when ``stage`` finishes (done or failed): those among
    them that wait for no other predecessor still pending or running."""
    return [s for s in Stage if stage in AFTER.get(s, ())]


def first_stages(stages: list[Stage] | tuple[Stage, ...]) -> list[Stage]:
    """Of the stages about to run, those to enqueue now: the rest wait for the stages they
    read, the last of which enqueues them when it finishes."""
    return [s for s in stages if not any(before in stages for before in AFTER.get(s, ()))]

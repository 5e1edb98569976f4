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
    def express_queue(self) -> str:
        return EXPRESS_QUEUES[self]

    @property
    def task_name(self) -> str:
        return TASK_NAMES[self]


QUEUES: dict[Stage, str] = {
    Stage.THUMBNAILS: "thumbnails",
    Stage.HASHING: "hashing",
    Stage.DEDUPE: "dedupe",
}

# Each stage's express queue: jobs of tenants with little waiting (fair scheduling's
# express lane), consumed only by the stage's express worker, a small one kept free for
# them so that they never wait for a running job of someone else's backlog.
EXPRESS_QUEUES: dict[Stage, str] = {stage: f"{queue}.express" for stage, queue in QUEUES.items()}

TASK_NAMES: dict[Stage, str] = {
    Stage.THUMBNAILS: "imgflow.thumbnails.render",
    Stage.HASHING: "imgflow.hashing.analyse",
    Stage.DEDUPE: "imgflow.dedupe.check",
}


# The stage whose output a stage reads, when it has one. The hasher and the deduper read
# the thumbnailer's analysis copy of the original (keys.analysis_key) instead of decoding
# the original again: entropy decoding a 3-5 MB JPEG costs 30-40 ms at any scale, and was
# 72 % of the hasher's CPU and half the deduper's. So they are enqueued when the
# thumbnailer finishes (imgflow_runtime.stage_runner), not at upload.
AFTER: dict[Stage, Stage] = {
    Stage.HASHING: Stage.THUMBNAILS,
    Stage.DEDUPE: Stage.THUMBNAILS,
}


def dependants(stage: Stage) -> list[Stage]:
    """Stages enqueued when ``stage`` finishes (done or failed)."""
    return [s for s in Stage if AFTER.get(s) is stage]


def first_stages(stages: list[Stage] | tuple[Stage, ...]) -> list[Stage]:
    """Of the stages about to run, those to enqueue now: the rest wait for the stage they
    read, which enqueues them when it finishes."""
    return [s for s in stages if AFTER.get(s) not in stages]

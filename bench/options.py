"""The knobs of `python -m bench` that a suite may take (the end-to-end suite does)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imgflow_localstack.services import (
    DEDUPER,
    EXPRESS_SUFFIX,
    HASHER,
    RUN_CONCURRENCY,
    THUMBNAILER,
)

# The stages' workers and their express workers (which the fairness bench runs).
WORKERS = (
    *(STAGE_WORKERS := (THUMBNAILER, HASHER, DEDUPER)),
    *(f"{name}{EXPRESS_SUFFIX}" for name in STAGE_WORKERS),
)


@dataclass(frozen=True)
class BenchOptions:
    """``out`` is the results folder: a suite writes its files there (charts), beside
    results.json, and names them in ``Suite.files``."""

    images: int = 1000
    clients: int = 16
    # What `make run` uses, so the figures describe the system people start.
    concurrency: Mapping[str, int] = field(default_factory=lambda: dict(RUN_CONCURRENCY))
    out: Path | None = None
    # Stored-vector counts the embeddings suite searches (1M: add 1000000, an hour-plus).
    vectors: tuple[int, ...] = (10_000, 100_000)
    # The HNSW build's ef_construction for that search (migration 0003 uses 64).
    ef_construction: int = 64
    # webhooks: which "with" rounds run: "steady" (the dead endpoints already paused),
    # "discovery" (fresh, while the sender finds them dead), or both.
    webhooks_phases: tuple[str, ...] = ("steady",)


def parse_concurrency(text: str) -> dict[str, int]:
    """``thumbnailer=2,hasher=1`` -> processes per worker; unnamed workers keep the default."""
    concurrency = dict(RUN_CONCURRENCY)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or name not in WORKERS or not value.isdigit() or int(value) < 1:
            raise ValueError(
                f"bad concurrency {item!r}: expected WORKER=N with N >= 1 and WORKER one of "
                f"{', '.join(WORKERS)}"
            )
        concurrency[name] = int(value)
    return concurrency

"""SHA-256 throughput: what hashing an upload as it streams costs, per 5 MB image."""

from __future__ import annotations

import hashlib
import os
import time

from bench.results import Measurement, Suite

CHUNK = 64 * 1024  # what the API receives per read from uvicorn


def _best_of(repeats: int, work) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def run(quick: bool = False) -> Suite:
    size = 5 * 1024 * 1024
    data = os.urandom(size)
    repeats = 3 if quick else 20

    def whole() -> None:
        hashlib.sha256(data).digest()

    def streamed() -> None:
        h = hashlib.sha256()
        view = memoryview(data)
        for i in range(0, size, CHUNK):
            h.update(view[i : i + CHUNK])
        h.digest()

    whole_s = _best_of(repeats, whole)
    streamed_s = _best_of(repeats, streamed)
    return Suite(
        "SHA-256 of a 5 MB upload",
        [
            Measurement("one call on the whole body", whole_s * 1000, "ms"),
            Measurement(
                "64 KiB chunks as they stream",
                streamed_s * 1000,
                "ms",
                baseline="one call on the whole body",
            ),
            Measurement(
                "throughput (streamed)", size / streamed_s / 2**20, "MiB/s", lower_is_better=False
            ),
        ],
        notes=[
            "Streaming costs the same as hashing afterwards, but the digest is ready "
            "when the last byte arrives instead of adding its time after."
        ],
    )

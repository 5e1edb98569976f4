"""Percentiles for latency lists (linear interpolation, as numpy and Prometheus do)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def percentile(values: Iterable[float | None], q: float) -> float:
    """The q-th percentile (0-100) of the values that are not None; nan when there are none."""
    present = [v for v in values if v is not None]
    if not present:
        return float("nan")
    return float(np.percentile(present, q))

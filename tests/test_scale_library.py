"""The scale bench's synthetic library looks like what the system writes (bench/scale.py).

Pure functions, no servers: cosines drawn from the measured spread, vectors at exactly
the drawn cosines, and a burst's pairs and groups as the deduper would store them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import numpy as np

from bench.scale_library import (
    CANDIDATES,
    COPY_TO_CENTRE,
    COSINE_THRESHOLD,
    _burst,
    _Rows,
    around,
    draw,
)
from imgflow_runtime.grouping import Pair, Rule, group


def test_cosines_follow_the_measured_percentiles() -> None:
    drawn = draw(COPY_TO_CENTRE, np.random.default_rng(1), 20_000)
    assert drawn.min() >= 0.60 and drawn.max() <= 0.999
    assert abs(float(np.median(drawn)) - 0.971) < 0.005  # the measured p50
    assert abs(float(np.percentile(drawn, 10)) - 0.859) < 0.01  # and p10


def test_vectors_lie_at_exactly_the_drawn_cosines() -> None:
    rng = np.random.default_rng(2)
    centre = rng.normal(size=1280).astype(np.float32)
    centre /= np.linalg.norm(centre)
    cosines = np.array([0.5, 0.9, 0.99])
    vectors = around(centre, cosines, rng)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors @ centre, cosines, atol=1e-5)


def test_a_burst_holds_the_pairs_a_check_finds_and_the_rules_groups() -> None:
    rows = _Rows()
    tenant = uuid4()
    burst = _burst(rows, tenant, 120, np.random.default_rng(3), datetime.now(UTC))
    assert len(burst.ids) == len(rows.images) == 120
    order = {image: k for k, image in enumerate(burst.ids)}
    later = [max(a, b, key=order.__getitem__) for a, b, *_ in rows.pairs]
    # each image pairs with at most 20 images before it, all at or above the threshold
    assert max(later.count(image) for image in set(later)) <= CANDIDATES
    assert all(score >= COSINE_THRESHOLD for *_, score, _ in rows.pairs)
    assert len(rows.pairs) > 120, "a burst is one dense component, not scattered copies"
    stored = {}
    for image, gid in rows.members:
        stored.setdefault(gid, set()).add(image)
    expected = group([Pair(a, b, s) for a, b, _, _, s, _ in rows.pairs], Rule.AVERAGE_LINK)
    assert {frozenset(g) for g in stored.values()} == set(expected.groups)
    assert len(stored) == burst.groups >= 2

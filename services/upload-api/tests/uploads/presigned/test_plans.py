"""Multipart part planning of presigned uploads: S3's limits hold for any declared size."""

from __future__ import annotations

import pytest

from imgflow_upload_api.uploads.presigned.plans import MAX_PARTS, part_size_for, plan_parts

MIB = 1024 * 1024


@pytest.mark.parametrize(
    "byte_size", [1, 5 * MIB, 16 * MIB + 1, 5 * 1024**3, 200 * 1024**3, 16 * MIB * MAX_PARTS + 1]
)
def test_parts_cover_the_file_within_s3_limits(byte_size: int) -> None:
    part_size = part_size_for(byte_size, 16 * MIB)
    parts = plan_parts(byte_size, part_size)

    assert 1 <= len(parts) <= MAX_PARTS
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    assert sum(p.size for p in parts) == byte_size
    assert all(p.offset == (p.number - 1) * part_size for p in parts)
    assert all(p.size == part_size for p in parts[:-1])  # only the last may be short
    assert part_size >= 16 * MIB and part_size % MIB == 0


def test_the_configured_part_size_is_kept_while_it_fits() -> None:
    assert part_size_for(5 * 1024**3, 16 * MIB) == 16 * MIB
    assert part_size_for(16 * MIB * MAX_PARTS + 1, 16 * MIB) == 17 * MIB

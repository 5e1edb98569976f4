"""How a presigned upload's bytes are cut into S3 multipart parts.

S3 allows at most 10,000 parts, each at least 5 MiB except the last; the part size
grows (in whole MiB) when the configured one would need more parts than that.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PARTS = 10_000
_MIB = 1024 * 1024


@dataclass(frozen=True)
class PlannedPart:
    number: int  # 1-based, as S3 numbers parts
    offset: int
    size: int


def part_size_for(byte_size: int, configured: int) -> int:
    needed = -(-byte_size // MAX_PARTS)
    needed = -(-needed // _MIB) * _MIB
    return max(configured, needed)


def plan_parts(byte_size: int, part_size: int) -> list[PlannedPart]:
    return [
        PlannedPart(i + 1, offset, min(part_size, byte_size - offset))
        for i, offset in enumerate(range(0, byte_size, part_size))
    ]

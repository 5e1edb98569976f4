"""What a benchmark suite returns, and how results are written (JSON and Markdown)."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil


@dataclass
class Measurement:
    """One number. ``baseline`` names another measurement of the same suite to compare to.

    For ``lower_is_better`` units (times, bytes) the ratio is baseline / this, so 6.0 reads
    "six times faster than the baseline"; otherwise it is this / baseline.
    """

    name: str
    value: float
    unit: str
    baseline: str | None = None
    lower_is_better: bool = True
    extra: dict[str, float | str] = field(default_factory=dict)


@dataclass
class Suite:
    title: str
    measurements: list[Measurement]
    notes: list[str] = field(default_factory=list)

    def ratio(self, m: Measurement) -> float | None:
        if m.baseline is None:
            return None
        base = next((b for b in self.measurements if b.name == m.baseline), None)
        if base is None or base.value == 0 or m.value == 0:
            return None
        return base.value / m.value if m.lower_is_better else m.value / base.value


def machine() -> dict[str, str | int | float]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(logical=True) or 0,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": platform.platform(terse=True),
    }


def to_markdown(suites: list[Suite]) -> str:
    info = machine()
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}.",
        "",
    ]
    for suite in suites:
        lines += [
            f"### {suite.title}",
            "",
            "| measurement | value | vs baseline |",
            "| --- | ---: | ---: |",
        ]
        for m in suite.measurements:
            ratio = suite.ratio(m)
            versus = f"{ratio:.2f}x vs {m.baseline}" if ratio is not None else ""
            lines.append(f"| {m.name} | {m.value:,.2f} {m.unit} | {versus} |")
        lines += ["", *(f"- {n}" for n in suite.notes), ""]
    return "\n".join(lines)


def write(suites: list[Suite], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": machine(),
        "suites": [
            {**asdict(s), "ratios": {m.name: s.ratio(m) for m in s.measurements}} for s in suites
        ],
    }
    (folder / "results.json").write_text(json.dumps(payload, indent=2))
    (folder / "results.md").write_text(to_markdown(suites))
    return folder

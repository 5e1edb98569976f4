"""What a benchmark suite returns, and how results are written (JSON and Markdown)."""

from __future__ import annotations

import json
import math
import os
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
class Table:
    """A breakdown that is not a list of ratios (per stage, per process)."""

    title: str
    columns: list[str]
    rows: list[list[str | float | int]]


@dataclass
class Suite:
    title: str
    measurements: list[Measurement]
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    # Files the suite wrote into the results folder (charts), by name.
    files: list[str] = field(default_factory=list)
    # The suite raised, or could not measure what it set out to (its notes say why).
    failed: bool = False

    def ratio(self, m: Measurement) -> float | None:
        if m.baseline is None:
            return None
        base = next((b for b in self.measurements if b.name == m.baseline), None)
        if base is None or base.value == 0 or m.value == 0:
            return None
        return base.value / m.value if m.lower_is_better else m.value / base.value


def machine() -> dict[str, str | int | float]:
    """The machine, and its load when called: call it before the suites run, since others'
    processes share the cores and change every figure."""
    load_1m, load_5m, _ = os.getloadavg()
    return {
        "cpu": _cpu_model() or platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(logical=True) or 0,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": platform.platform(terse=True),
        "load_1m_before": round(load_1m, 2),
        "load_5m_before": round(load_5m, 2),
        "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cell(value: str | float | int) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value == value else "n/a"  # nan: nothing measured
    return str(value)


def to_markdown(suites: list[Suite], info: dict[str, str | int | float] | None = None) -> str:
    info = info or machine()
    lines = [
        f"Measured {info['started_utc']} on {info['cpu']}, {info['cores']} cores, "
        f"{info['memory_gib']} GiB, Python {info['python']}; load average before the run "
        f"{info['load_1m_before']} (1 min), {info['load_5m_before']} (5 min).",
        "",
    ]
    for suite in suites:
        lines += [
            f"### {suite.title}{' (FAILED)' if suite.failed else ''}",
            "",
            "| measurement | value | vs baseline |",
            "| --- | ---: | ---: |",
        ]
        for m in suite.measurements:
            ratio = suite.ratio(m)
            versus = f"{ratio:.2f}x vs {m.baseline}" if ratio is not None else ""
            lines.append(f"| {m.name} | {_cell(m.value)} {m.unit} | {versus} |")
        lines.append("")
        for table in suite.tables:
            lines += [
                f"#### {table.title}",
                "",
                "| " + " | ".join(table.columns) + " |",
                "| --- |" + " ---: |" * (len(table.columns) - 1),
                *("| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows),
                "",
            ]
        lines += [
            f"![{name}]({name})" if name.endswith(".png") else f"- [{name}]({name})"
            for name in suite.files
        ]
        lines += ["", *(f"- {n}" for n in suite.notes), ""]
    return "\n".join(lines)


def write(
    suites: list[Suite], folder: Path, info: dict[str, str | int | float] | None = None
) -> Path:
    info = info or machine()
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "suites": [
            {**asdict(s), "ratios": {m.name: s.ratio(m) for m in s.measurements}} for s in suites
        ],
    }
    (folder / "results.json").write_text(json.dumps(_json_safe(payload), indent=2))
    (folder / "results.md").write_text(to_markdown(suites, info))
    return folder


def _json_safe(value: object) -> object:
    """nan and infinity (nothing measured) become null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value

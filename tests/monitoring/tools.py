"""The Prometheus tools the monitoring tests run: Debian's `prometheus` package."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD_FILE = ROOT / "deploy" / "grafana" / "dashboards" / "imgflow.json"
RULE_TESTS_FILE = Path(__file__).with_name("rules_test.yml")


def binary(name: str) -> str:
    """The path of ``promtool`` or ``prometheus``; .ci/run installs them when missing."""
    path = shutil.which(name)
    assert path, f"{name} not found: apt-get install prometheus (Debian), as .ci/run does"
    return path

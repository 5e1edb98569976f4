"""The alert rules load in Prometheus and fire when they should (rules_test.yml)."""

from __future__ import annotations

import subprocess

from tests.monitoring.tools import RULE_TESTS_FILE, RULES_FILE, binary


def _promtool(*args: str) -> str:
    done = subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_the_rules_are_valid() -> None:
    assert "SUCCESS" in _promtool("check", "rules", str(RULES_FILE))


def test_the_alerts_fire_as_the_unit_tests_say() -> None:
    # promtool resolves rule_files relative to the test file, so any cwd works.
    assert "SUCCESS" in _promtool("test", "rules", str(RULE_TESTS_FILE))

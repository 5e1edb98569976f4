"""Fixtures of the deduper's own tests: the real model, built once per session (cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.build_model import ensure_model


@pytest.fixture(scope="session")
def model_path() -> Path:
    return ensure_model()

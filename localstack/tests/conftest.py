"""Real servers on free ports in a temporary folder; no mocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from imgflow_localstack import LocalStack, StackPorts


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One running stack shared by the read-only checks of a module."""
    with LocalStack(tmp_path_factory.mktemp("stack"), StackPorts.free()) as running:
        yield running


def _own_descendants() -> list[psutil.Process]:
    alive = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def own_descendants() -> Callable[[], list[psutil.Process]]:
    """Lists our live descendants started during the test (a module's shared stack is not
    one of them): after a stop there must be none."""
    before = {p.pid for p in _own_descendants()}
    return lambda: [p for p in _own_descendants() if p.pid not in before]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"

"""Run asyncpg coroutines from synchronous Celery tasks.

Each worker process keeps one event loop (and so one pool) for its whole life; a forked
child starts a fresh one, since an event loop and its sockets must not cross a fork.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class ProcessLoop:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._pid != os.getpid():
            self._loop = asyncio.new_event_loop()
            self._pid = os.getpid()
        return self._loop.run_until_complete(coro)

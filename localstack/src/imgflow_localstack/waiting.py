"""Readiness waits: poll the real thing until it answers or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from imgflow_localstack.child import Child
from imgflow_localstack.errors import StartTimeoutError

POLL_INTERVAL_S = 0.05


def wait_until_ready(
    check: Callable[[], bool],
    *,
    what: str,
    child: Child | None,
    timeout_s: float,
) -> None:
    """Call ``check`` until it returns True.

    An exception from ``check`` counts as "not yet" (the server may still be binding its
    port) and is quoted if the deadline passes. If ``child`` exits meanwhile, raise at once
    with its log tail instead of waiting for the deadline.
    """
    deadline = time.monotonic() + timeout_s
    last_problem = "no answer yet"
    while True:
        if child is not None:
            child.ensure_running()
        try:
            if check():
                return
        except Exception as exc:  # any failure to answer just means "not ready"
            last_problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            tail = f"; last lines of {child.log_path}:\n{child.log_tail()}" if child else ""
            raise StartTimeoutError(
                f"{what} not ready after {timeout_s:.0f} s (last check: {last_problem}){tail}"
            )
        time.sleep(POLL_INTERVAL_S)


def run_side_by_side(calls: Sequence[Callable[[], None]], thread_name: str) -> None:
    """Run ``calls`` on threads; return when all are done, raise the first failure at once.

    On failure (or Ctrl-C) we don't wait for the other calls: the caller stops the children
    they wait on, which ends them too.
    """
    pool = ThreadPoolExecutor(max(1, len(calls)), thread_name_prefix=thread_name)
    try:
        futures = [pool.submit(call) for call in calls]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

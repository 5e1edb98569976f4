"""An idle process's event-loop lag: how late the OS alone wakes a loop on this machine.

The `api` suite runs it beside each upload run, so a server's loop lag can be read
against what the machine's load does to any process; a server that blocks its own loop
lags beyond it. Probes until stdin closes, then prints the lags (seconds) as JSON.

    python bench/lag_reference.py < /dev/null
"""

from __future__ import annotations

import asyncio
import json
import sys

INTERVAL_S = 0.02  # as imgflow_upload_api.ops.loop_lag


async def probe() -> list[float]:
    loop = asyncio.get_running_loop()
    closed = loop.run_in_executor(None, sys.stdin.read)
    lags: list[float] = []
    while not closed.done():
        asked = loop.time()
        await asyncio.sleep(INTERVAL_S)
        lags.append(max(loop.time() - asked - INTERVAL_S, 0.0))
    return lags


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe())))

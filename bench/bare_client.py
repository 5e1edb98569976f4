"""The client bench's bare script: what a person would write with httpx alone, run as a
process of its own like `imgflow upload`, so both pay an interpreter's start and their
imports. Reads each file, POSTs it with an Idempotency-Key from its SHA-256 (the server
work the command asks for), ``concurrency`` asyncio tasks on one client.

    python bench/bare_client.py URL FOLDER CONCURRENCY   (the API key in IMGFLOW_API_KEY)

Prints the number of 201 answers.
"""

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import httpx


async def main(url: str, folder: Path, concurrency: int) -> int:
    files = iter(sorted(folder.iterdir()))  # noqa: ASYNC240 (before the first request)
    created = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {os.environ['IMGFLOW_API_KEY']}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def one_task() -> None:
            nonlocal created
            for path in files:
                body = path.read_bytes()
                key = "sha256-" + hashlib.sha256(body).hexdigest()
                response = await client.post(
                    "/v1/images", content=body, headers={"Idempotency-Key": key}
                )
                created += response.status_code == 201

        await asyncio.gather(*(one_task() for _ in range(concurrency)))
    return created


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))))

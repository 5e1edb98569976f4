"""Errors of the local stack; each message says what failed and what to do about it."""

from __future__ import annotations


class LocalStackError(RuntimeError):
    """Base class: something of the local stack could not start or stop."""


class PortInUseError(LocalStackError):
    """A port the stack needs is already taken by another process."""

    def __init__(self, port: int, server: str, hint: str) -> None:
        super().__init__(
            f"port {port} for {server} is already in use — is `make run` (or another local "
            f"stack) already running? {hint}, or stop the process that holds it "
            f"(`ss -ltnp 'sport = :{port}'` shows which)"
        )
        self.port = port
        self.server = server


class DataDirInUseError(LocalStackError):
    """Another local stack already runs on the same data folder."""


class ProcessExitedError(LocalStackError):
    """A child exited while it was starting or while it should have been running."""


class StartTimeoutError(LocalStackError):
    """A child did not become ready before its deadline."""

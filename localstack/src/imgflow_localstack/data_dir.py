"""The local stack's data folder: one sub-folder per server, logs, and a lock."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from imgflow_localstack.errors import DataDirInUseError


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def valkey(self) -> Path:
        return self.root / "valkey"

    @property
    def s3(self) -> Path:
        return self.root / "s3"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


class DataDirLock:
    """An exclusive lock on the data folder while a stack runs on it.

    Two stacks on one folder would corrupt it (Valkey's AOF, SeaweedFS's volumes); the
    kernel drops the lock when the holder dies, so there is never a stale lock to clean.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirInUseError(
                f"data folder {self.path.parent} is in use by another local stack (pid "
                f"{holder}); stop it, or give this one another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None

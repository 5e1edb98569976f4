"""The files named on the command line: files as given, folders' files (all the way down
with ``--recursive``). Whether each is an image is decided when it is read."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


class MissingPath(Exception):
    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        names = ", ".join(str(p) for p in paths)
        super().__init__(f"no such file or folder: {names}")


def collect(paths: Iterable[Path], recursive: bool) -> list[Path]:
    """Every candidate file, absolute, each once, in a stable order. Raises MissingPath
    (before anything is sent) when a named path does not exist."""
    paths = list(paths)
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise MissingPath(missing)
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            for file in _folder(path, recursive):
                found.setdefault(file.absolute(), None)
        else:
            found.setdefault(path.absolute(), None)
    return list(found)


def _folder(folder: Path, recursive: bool) -> Iterable[Path]:
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file())
    files: list[Path] = []
    # Symlinked folders are not followed: they can loop.
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        files.extend(Path(root) / name for name in sorted(names))
    return files

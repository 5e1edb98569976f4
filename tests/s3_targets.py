"""The S3 servers the storage contract tests run against, each as a ``S3Target``.

- ``seaweedfs``: the session system's own S3 (what `make run` uses).
- ``moto``: a second, independent implementation (moto's server mode, from PyPI).
- ``moto-tls``: moto over HTTPS, its certificate signed by a CA this test run makes; the
  clients trust that CA through IMGFLOW_S3_CA_BUNDLE, as a user with a private CA would.
- ``own``: the user's own S3 (MinIO, AWS, ...), when IMGFLOW_TEST_S3_ENDPOINT is set:

  IMGFLOW_TEST_S3_ENDPOINT=host:port IMGFLOW_TEST_S3_ACCESS_KEY=... \\
  IMGFLOW_TEST_S3_SECRET_KEY=... IMGFLOW_TEST_S3_BUCKET=... (must exist) \\
  [IMGFLOW_TEST_S3_SECURE=true] [IMGFLOW_TEST_S3_CA_BUNDLE=ca.pem] \\
  [IMGFLOW_TEST_S3_REGION=us-east-1] [IMGFLOW_TEST_S3_CHECKS_CHECKSUMS=true]

What differs between servers is written down here, not asked of the server under test,
so a server that changed its behaviour fails the tests.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme
from pydantic import SecretStr

from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.moto_s3 import MotoS3Server, TlsFiles
from imgflow_localstack.ports import HOST, free_port
from imgflow_runtime.storage import ObjectStore
from tests.storage_backend import wants_container

OWN = "IMGFLOW_TEST_S3_"
MOTO_BUCKET = "imgflow-contract"


@dataclass(frozen=True)
class S3Target:
    name: str
    settings: CommonSettings  # the s3_* settings reach this server; the rest as the session's
    # The server refuses a wrong x-amz-checksum-sha256 (BadDigest) and keeps a right one;
    # moto stores either, unchecked (the hasher then refuses to start: see test_hasher_*).
    checks_checksums: bool
    # The server refuses a request signed with a wrong secret.
    checks_signatures: bool

    @property
    def store(self) -> ObjectStore:
        return ObjectStore.from_settings(self.settings)


def own_target_configured() -> bool:
    return bool(os.environ.get(f"{OWN}ENDPOINT"))


# The servers the `s3_target` fixture (conftest.py) gives, in turn; "own" only when
# configured, and "container" (an S3 container through testcontainers) only with
# IMGFLOW_TEST_STORAGE=container (tests/storage_backend.py).
S3_TARGETS = [
    "seaweedfs",
    "moto",
    "moto-tls",
    *(["own"] if own_target_configured() else []),
    *(["container"] if wants_container() else []),
]


def own_target(base: CommonSettings) -> S3Target:
    env = os.environ

    def flag(name: str, default: bool) -> bool:
        return env.get(f"{OWN}{name}", str(default)).lower() in ("1", "true", "yes")

    settings = base.model_copy(
        update={
            "s3_endpoint": env[f"{OWN}ENDPOINT"],
            "s3_access_key": env[f"{OWN}ACCESS_KEY"],
            "s3_secret_key": SecretStr(env[f"{OWN}SECRET_KEY"]),
            "s3_bucket": env[f"{OWN}BUCKET"],
            "s3_secure": flag("SECURE", False),
            "s3_ca_bundle": env.get(f"{OWN}CA_BUNDLE") or None,
            "s3_region": env.get(f"{OWN}REGION", base.s3_region),
        }
    )
    return S3Target("own", settings, flag("CHECKS_CHECKSUMS", True), True)


def throwaway_ca(folder: Path) -> TlsFiles:
    """A CA made now, and a certificate it signed for 127.0.0.1 and localhost, in PEM files."""
    ca = trustme.CA()
    issued = ca.issue_cert(HOST, "localhost")
    files = TlsFiles(cert=folder / "s3.pem", key=folder / "s3.key", ca=folder / "ca.pem")
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    issued.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    return files


@contextlib.contextmanager
def moto_target(base: CommonSettings, tls: bool) -> Iterator[S3Target]:
    with tempfile.TemporaryDirectory(prefix="imgflow-moto-") as folder:
        files = throwaway_ca(Path(folder)) if tls else None
        server = MotoS3Server(Path(folder) / "moto.log", free_port(), MOTO_BUCKET, files)
        server.start()
        try:
            settings = base.model_copy(
                update={
                    "s3_endpoint": server.endpoint,
                    "s3_bucket": MOTO_BUCKET,
                    "s3_secure": tls,
                    "s3_ca_bundle": str(files.ca) if files else None,
                }
            )
            yield S3Target("moto-tls" if tls else "moto", settings, False, False)
        finally:
            server.stop()

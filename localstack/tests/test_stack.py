"""The three real servers: they answer, they keep data across restarts, they fail clearly."""

from __future__ import annotations

import asyncio
import io
import socket
import time
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis
from minio.error import S3Error

from imgflow_contracts.settings import CommonSettings
from imgflow_localstack import (
    DataDirInUseError,
    LocalStack,
    PortInUseError,
    ProcessExitedError,
    StackPorts,
)
from imgflow_localstack.seaweedfs import s3_client
from imgflow_localstack.waiting import wait_until_ready


def sql(stack: LocalStack, query: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(stack.database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def valkey(stack: LocalStack) -> redis.Redis:
    return redis.Redis.from_url(stack.broker_url, socket_timeout=5)


def s3_put(stack: LocalStack, key: str, data: bytes) -> None:
    client = s3_client(stack.s3_endpoint, stack.s3_access_key, stack.s3_secret_key)
    client.put_object(stack.bucket, key, io.BytesIO(data), len(data))


def s3_get(stack: LocalStack, key: str) -> bytes:
    client = s3_client(stack.s3_endpoint, stack.s3_access_key, stack.s3_secret_key)
    response = client.get_object(stack.bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def test_postgres_has_pgvector_for_the_imgflow_role(stack: LocalStack) -> None:
    rows = sql(stack, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    assert rows and rows[0]["extversion"]
    assert sql(stack, "SELECT current_user AS u, current_database() AS d")[0] == ("imgflow",) * 2


def test_valkey_answers_ping(stack: LocalStack) -> None:
    assert valkey(stack).ping() is True


def test_s3_stores_objects_and_refuses_a_wrong_secret(stack: LocalStack) -> None:
    s3_put(stack, "originals/a.bin", b"\x00image bytes")
    assert s3_get(stack, "originals/a.bin") == b"\x00image bytes"

    wrong = s3_client(stack.s3_endpoint, stack.s3_access_key, "not-the-secret")
    with pytest.raises(S3Error) as refused:
        wrong.get_object(stack.bucket, "originals/a.bin")
    assert refused.value.code == "SignatureDoesNotMatch"


def test_env_is_what_imgflow_settings_read(stack: LocalStack, monkeypatch) -> None:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)
    settings = CommonSettings()
    assert settings.database_url == stack.database_url
    assert settings.broker_url == stack.broker_url
    assert settings.s3_endpoint == stack.s3_endpoint
    assert settings.s3_secret_key.get_secret_value() == stack.s3_secret_key
    assert settings.s3_secure is False


def test_weed_listens_only_on_ports_we_chose(stack: LocalStack) -> None:
    assert stack.s3.child is not None
    weed = psutil.Process(stack.s3.child.pid)
    chosen = set(stack.s3.listeners().values())

    def listening() -> set[int]:
        connections = weed.net_connections("tcp")
        return {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}

    # `weed mini` serves S3 before every component has bound its port (seen: one gRPC
    # port late on a loaded machine), so wait for the set to be complete, then compare.
    wait_until_ready(
        lambda: listening() >= chosen, what="weed's listeners", child=None, timeout_s=30
    )
    assert listening() == chosen
    assert {c.laddr.ip for c in weed.net_connections("tcp") if c.status == "LISTEN"} == {
        "127.0.0.1"
    }


def test_a_second_stack_on_the_same_folder_is_refused(stack: LocalStack) -> None:
    with pytest.raises(DataDirInUseError, match="in use by another local stack"):
        LocalStack(stack.data_dir, StackPorts.free()).start()


def test_restart_keeps_rows_keys_and_objects_and_leaves_no_process(
    data_dir: Path, own_descendants
) -> None:
    ports = StackPorts.free()
    with LocalStack(data_dir, ports) as first:
        sql(first, "CREATE TABLE kept (v text)")
        sql(first, "INSERT INTO kept VALUES ('row survives')")
        valkey(first).rpush("queue", "job survives")
        s3_put(first, "kept/object", b"object survives")
        assert own_descendants()
    assert own_descendants() == []

    with LocalStack(data_dir, ports) as second:
        assert sql(second, "SELECT v FROM kept")[0]["v"] == "row survives"
        assert valkey(second).lrange("queue", 0, -1) == [b"job survives"]
        assert s3_get(second, "kept/object") == b"object survives"
    assert own_descendants() == []


def test_a_taken_port_is_named_and_nothing_starts(data_dir: Path, own_descendants) -> None:
    ports = StackPorts.free()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.postgres))
        squatter.listen()
        stack = LocalStack(data_dir, ports)
        with pytest.raises(PortInUseError) as taken:
            stack.start()
    message = str(taken.value)
    assert f"port {ports.postgres} for PostgreSQL is already in use" in message
    assert "IMGFLOW_LOCAL_PORT_POSTGRES" in message
    assert own_descendants() == []


def test_a_taken_weed_internal_port_is_named(data_dir: Path) -> None:
    ports = StackPorts.free()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.weed_filer_grpc))
        squatter.listen()
        with pytest.raises(PortInUseError, match=rf"port {ports.weed_filer_grpc} for SeaweedFS"):
            LocalStack(data_dir, ports).start()


def test_a_server_that_exits_while_starting_is_reported_with_its_log(
    data_dir: Path, own_descendants
) -> None:
    # A data folder that looks initialised (so no initdb) but is broken: postgres exits.
    pg_data = data_dir / "postgres"
    pg_data.mkdir(parents=True)
    (pg_data / "PG_VERSION").write_text("18\n")
    stack = LocalStack(data_dir, StackPorts.free())
    began = time.monotonic()
    with pytest.raises(ProcessExitedError) as exited:
        stack.start()
    deadline = stack.postgres.start_timeout_s
    assert time.monotonic() - began < deadline, "must not wait for the readiness deadline"
    message = str(exited.value)
    assert "postgres exited with code" in message
    assert "postgresql.conf" in message  # the server's own words, from its log
    assert own_descendants() == []

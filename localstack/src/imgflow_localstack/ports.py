"""The ports one local stack listens on, all on 127.0.0.1.

Two stacks run side by side on one machine (`make run` on fixed ports while `make test`
starts its own on free ports), so every listener is chosen here, SeaweedFS's internal
master/volume/filer/admin ports included: left to their defaults, two stacks would collide.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import random
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from imgflow_contracts.settings import LOCAL_POSTGRES_PORT, LOCAL_S3_PORT, LOCAL_VALKEY_PORT
from imgflow_localstack.errors import LocalStackError, PortInUseError

HOST = "127.0.0.1"
ENV_OVERRIDE_PREFIX = "IMGFLOW_LOCAL_PORT_"

# Free ports are drawn from below the kernel's ephemeral range, never from it (bind to 0):
# between choosing a port and its server binding it (seconds, while the stack starts), any
# outgoing connection on the machine may take an ephemeral port as its source port. Seen:
# a worker's metrics port taken that way while another test session ran beside. The pick
# starts above WEED_GRPC_OFFSET's reach so the SeaweedFS admin pair stays out of it too.
FREE_PORTS_FROM = 20000
_EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
_PICK_TRIES = 200

# Every port this process has handed out, oldest first. A system's ports come from three
# picks (the stack's, the API's, the other processes') and each releases its sockets before
# any server binds: without this record a later pick could hand out a port an earlier one
# chose and its server had not bound yet (seen in CI: Flower given Postgres's or Valkey's
# port, "Address already in use"). Bounded, so a long test session never runs dry.
_HANDED_OUT: dict[int, None] = {}
_HANDED_OUT_KEPT = 4096
_HANDED_OUT_LOCK = threading.Lock()

# `weed mini` starts a maintenance worker that dials the admin server's gRPC port at
# admin HTTP port + 10000, whatever -admin.port.grpc says; so the admin pair must keep
# that distance, and the admin HTTP port must stay below 55536.
WEED_GRPC_OFFSET = 10000


@dataclass(frozen=True)
class StackPorts:
    postgres: int
    valkey: int
    s3: int
    s3_grpc: int
    weed_master: int
    weed_master_grpc: int
    weed_volume: int
    weed_volume_grpc: int
    weed_filer: int
    weed_filer_grpc: int
    weed_admin: int

    @property
    def weed_admin_grpc(self) -> int:
        return self.weed_admin + WEED_GRPC_OFFSET

    @classmethod
    def local_defaults(cls, environ: Mapping[str, str] | None = None) -> StackPorts:
        """The fixed ports of `make run`; each can be moved with IMGFLOW_LOCAL_PORT_<FIELD>."""
        environ = os.environ if environ is None else environ
        defaults = cls(
            postgres=LOCAL_POSTGRES_PORT,
            valkey=LOCAL_VALKEY_PORT,
            s3=LOCAL_S3_PORT,
            # SeaweedFS internals in a block right after S3's 58333.
            s3_grpc=LOCAL_S3_PORT + 1,
            weed_master=LOCAL_S3_PORT + 2,
            weed_master_grpc=LOCAL_S3_PORT + 3,
            weed_volume=LOCAL_S3_PORT + 4,
            weed_volume_grpc=LOCAL_S3_PORT + 5,
            weed_filer=LOCAL_S3_PORT + 6,
            weed_filer_grpc=LOCAL_S3_PORT + 7,
            # Its gRPC twin is 58341 (see WEED_GRPC_OFFSET).
            weed_admin=LOCAL_S3_PORT + 8 - WEED_GRPC_OFFSET,
        )
        return _with_overrides(defaults, environ)

    @classmethod
    def free(cls) -> StackPorts:
        """Ports free right now, for a test session's own stack."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "weed_admin"]
        with contextlib.ExitStack() as held:
            # Keep every socket bound until all are picked, so no other process takes one.
            taken: set[int] = set()
            chosen = {name: _held_free_port(held, taken) for name in names}
            chosen["weed_admin"] = _free_admin_port(held, taken)
        return cls(**chosen)

    def listeners(self) -> dict[str, int]:
        """Every port the stack will listen on, by a name fit for error messages."""
        named = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        named["weed_admin_grpc"] = self.weed_admin_grpc
        return named


# `make run`'s ports of imgflow's own processes besides the API (Flower's usual port).
LOCAL_METRICS_PORTS = {
    "thumbnailer": 9101,
    "hasher": 9102,
    "deduper": 9103,
    "webhook_sender": 9104,
    "thumbnailer_express": 9105,
    "hasher_express": 9106,
    "deduper_express": 9107,
}
LOCAL_FLOWER_PORT = 5555


@dataclass(frozen=True)
class ProcessPorts:
    """Where imgflow's processes listen besides the API: each worker's /metrics (what
    Prometheus scrapes in production) and Flower."""

    thumbnailer_metrics: int
    hasher_metrics: int
    deduper_metrics: int
    webhook_sender_metrics: int
    thumbnailer_express_metrics: int
    hasher_express_metrics: int
    deduper_express_metrics: int
    flower: int

    @classmethod
    def local_defaults(cls, environ: Mapping[str, str] | None = None) -> ProcessPorts:
        """The fixed ports of `make run`; each can be moved with IMGFLOW_LOCAL_PORT_<FIELD>."""
        environ = os.environ if environ is None else environ
        metrics = {f"{name}_metrics": port for name, port in LOCAL_METRICS_PORTS.items()}
        return _with_overrides(cls(**metrics, flower=LOCAL_FLOWER_PORT), environ)

    @classmethod
    def free(cls) -> ProcessPorts:
        with contextlib.ExitStack() as held:
            taken: set[int] = set()
            chosen = {f.name: _held_free_port(held, taken) for f in dataclasses.fields(cls)}
        return cls(**chosen)

    def metrics(self, worker: str) -> int:
        """The /metrics port of a worker (thumbnailer, hasher, deduper, webhook-sender, and
        the express workers: thumbnailer-express ...)."""
        return getattr(self, f"{worker.replace('-', '_')}_metrics")

    def listeners(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


_Ports = TypeVar("_Ports", StackPorts, ProcessPorts)


def _with_overrides(defaults: _Ports, environ: Mapping[str, str]) -> _Ports:
    overrides = {}
    for field in dataclasses.fields(defaults):
        variable = env_var_for(field.name)
        if variable in environ:
            value = environ[variable]
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise LocalStackError(f"{variable} must be a port number, not {value!r}")
            overrides[field.name] = int(value)
    return dataclasses.replace(defaults, **overrides)


def env_var_for(field_name: str) -> str:
    return f"{ENV_OVERRIDE_PREFIX}{field_name.upper()}"


@contextlib.contextmanager
def _bound_socket(port: int) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free, as for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        yield sock
    finally:
        sock.close()


def _free_admin_port(held: contextlib.ExitStack, taken: set[int]) -> int:
    """A free port whose +10000 twin (weed's admin gRPC) is free too."""
    for _ in range(100):
        admin = _held_free_port(held, taken) - WEED_GRPC_OFFSET
        if admin >= 1024 and not _unavailable(admin, taken) and port_is_free(admin):
            held.enter_context(_bound_socket(admin))
            _hand_out(admin, taken)
            return admin
    raise RuntimeError("found no free port pair for the SeaweedFS admin server")


def _held_free_port(held: contextlib.ExitStack, taken: set[int]) -> int:
    """A free port outside the ephemeral range and not in ``taken`` (the ports picked so
    far, which it joins), kept bound in ``held`` until the caller has picked all of its
    ports. The set, not the binding, keeps one stack's ports apart: with SO_REUSEADDR,
    Linux lets two sockets that do not listen bind one port (seen: a stack's two
    processes handed one port, one of them failing to start)."""
    low, high = FREE_PORTS_FROM, ephemeral_range()[0]
    for _ in range(_PICK_TRIES if high - low >= 1000 else 0):
        port = random.randrange(low, high)
        if _unavailable(port, taken):
            continue
        try:
            held.enter_context(_bound_socket(port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        _hand_out(port, taken)
        return port
    # An unusual kernel range (or a crowded machine): let the kernel choose.
    for _ in range(_PICK_TRIES):
        port = held.enter_context(_bound_socket(0)).getsockname()[1]
        if not _unavailable(port, taken):
            _hand_out(port, taken)
            return port
    raise RuntimeError("found no free port for the local stack")


def _unavailable(port: int, taken: set[int]) -> bool:
    """Whether ``port`` was picked already: by this pick, or handed out earlier in this
    process (its server may not have bound it yet)."""
    with _HANDED_OUT_LOCK:
        return port in taken or port in _HANDED_OUT


def _hand_out(port: int, taken: set[int]) -> None:
    taken.add(port)
    with _HANDED_OUT_LOCK:
        _HANDED_OUT[port] = None
        while len(_HANDED_OUT) > _HANDED_OUT_KEPT:
            del _HANDED_OUT[next(iter(_HANDED_OUT))]


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections (Linux's default elsewhere)."""
    try:
        with open(_EPHEMERAL_RANGE) as f:
            low, high = (int(part) for part in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def port_is_free(port: int) -> bool:
    try:
        with _bound_socket(port):
            return True
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        raise


def ensure_ports_free(ports: Mapping[str, int], server: str) -> None:
    """Raise :class:`PortInUseError` naming the first taken port of ``server``.

    ``ports`` maps :class:`StackPorts` listener names to ports.
    """
    for name, port in ports.items():
        if not port_is_free(port):
            label = server if len(ports) == 1 else f"{server} ({name})"
            # weed_admin_grpc has no variable of its own: it moves with weed_admin.
            env_var = env_var_for(name.removesuffix("_grpc") if name == "weed_admin_grpc" else name)
            raise PortInUseError(port, label, f"set {env_var} to another port")


def free_port() -> int:
    """One free port (for the API in tests), outside the ephemeral range."""
    with contextlib.ExitStack() as held:
        return _held_free_port(held, set())

"""`make run`'s fixed ports of the workers' metrics and Flower, and how to move them."""

from __future__ import annotations

import pytest

from imgflow_localstack import ports as ports_module
from imgflow_localstack.errors import LocalStackError
from imgflow_localstack.ports import ProcessPorts, StackPorts, ephemeral_range, free_port


def test_make_run_serves_each_workers_metrics_and_flower_on_fixed_ports() -> None:
    ports = ProcessPorts.local_defaults({})
    workers = ("thumbnailer", "hasher", "deduper", "webhook-sender")
    assert [ports.metrics(w) for w in workers] == [9101, 9102, 9103, 9104]
    express = ("thumbnailer-express", "hasher-express", "deduper-express")
    assert [ports.metrics(w) for w in express] == [9105, 9106, 9107]
    assert ports.flower == 5555


def test_each_port_moves_with_its_variable() -> None:
    ports = ProcessPorts.local_defaults(
        {"IMGFLOW_LOCAL_PORT_HASHER_METRICS": "19102", "IMGFLOW_LOCAL_PORT_FLOWER": "15555"}
    )
    assert (ports.hasher_metrics, ports.flower, ports.thumbnailer_metrics) == (19102, 15555, 9101)
    with pytest.raises(LocalStackError, match="IMGFLOW_LOCAL_PORT_FLOWER"):
        ProcessPorts.local_defaults({"IMGFLOW_LOCAL_PORT_FLOWER": "flower"})


def test_free_ports_are_distinct() -> None:
    assert len(set(ProcessPorts.free().listeners().values())) == 8


@pytest.fixture
def nothing_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's picks start from an empty record of ports handed out."""
    monkeypatch.setattr(ports_module, "_HANDED_OUT", {})


@pytest.mark.usefixtures("nothing_handed_out")
def test_a_port_drawn_twice_is_handed_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Held sockets with SO_REUSEADDR do not keep a second bind off the same port on Linux:
    # a draw that repeats itself once gave two of a stack's processes one port.
    draws = iter([21001, 21001, 21002, 21002, 21003, *range(21004, 21100)])
    monkeypatch.setattr(ports_module.random, "randrange", lambda low, high: next(draws))
    listeners = ProcessPorts.free().listeners().values()
    assert len(set(listeners)) == len(listeners) == 8


def test_free_ports_are_outside_the_ephemeral_range() -> None:
    # An outgoing connection's source port comes from that range: a port chosen there can
    # be taken before its server binds it.
    low, high = ephemeral_range()
    chosen = [
        *ProcessPorts.free().listeners().values(),
        *StackPorts.free().listeners().values(),
        free_port(),
    ]
    assert all(not low <= port <= high for port in chosen), chosen
    stack = StackPorts.free().listeners()
    assert len(set(stack.values())) == len(stack)


class _Draws:
    """A randrange that draws 21001, 21002, ... and can start its sequence again."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.port = 21000

    def __call__(self, low: int, high: int) -> int:
        self.port += 1
        return self.port


@pytest.mark.usefixtures("nothing_handed_out")
def test_a_systems_three_picks_never_share_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stack's ports, the API's and the other processes' are picked one after another,
    # each releasing its sockets before any server binds. Seen in CI: Flower handed a port
    # the stack had picked, failing with "Address already in use" once the stack bound it.
    # Here each pick draws the same sequence, the worst case.
    draws = _Draws()
    monkeypatch.setattr(ports_module.random, "randrange", draws)
    chosen = list(StackPorts.free().listeners().values())
    draws.restart()
    chosen.append(free_port())
    draws.restart()
    chosen.extend(ProcessPorts.free().listeners().values())
    assert len(set(chosen)) == len(chosen) == 12 + 1 + 8


def test_the_record_of_ports_handed_out_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports_module, "_HANDED_OUT", {})
    monkeypatch.setattr(ports_module, "_HANDED_OUT_KEPT", 5)
    picked = [free_port() for _ in range(8)]
    assert list(ports_module._HANDED_OUT) == picked[-5:]

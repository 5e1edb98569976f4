"""What the three servers have in common: launch, wait until ready, stop."""

from __future__ import annotations

from abc import ABC, abstractmethod

from imgflow_localstack.child import Child
from imgflow_localstack.ports import ensure_ports_free


class Server(ABC):
    """A server of the local stack, run as a child process we own.

    ``launch()`` only spawns (quick, and must run on a long-lived thread: see child.py);
    ``wait_ready()`` polls the server and prepares it (may run on any thread). Launching
    all servers before waiting on any lets them boot side by side.
    """

    display_name: str

    def __init__(self, start_timeout_s: float) -> None:
        self.start_timeout_s = start_timeout_s
        self.child: Child | None = None

    @abstractmethod
    def listeners(self) -> dict[str, int]:
        """The ports this server will listen on, by StackPorts name."""

    @abstractmethod
    def _make_child(self) -> Child:
        """Prepare the data folder and describe the process (may run setup commands)."""

    @abstractmethod
    def wait_ready(self) -> None:
        """Block until the server answers and is set up for imgflow, or raise."""

    def launch(self) -> None:
        if self.is_running():
            return
        ensure_ports_free(self.listeners(), self.display_name)
        self.child = self._make_child()
        self.child.start()

    def start(self) -> None:
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def request_stop(self) -> None:
        if self.child is not None:
            self.child.request_stop()

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()

    def is_running(self) -> bool:
        return self.child is not None and self.child.is_running()

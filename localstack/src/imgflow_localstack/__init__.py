"""Run imgflow's real servers and processes locally, for `make run` and the test session.

with LocalSystem.on_free_ports(tmp_path) as system:   # stack + migrations + processes
    httpx.post(f"{system.api_url}/v1/images", ...)

with LocalStack(tmp_path, StackPorts.free()) as stack:  # only the three servers
    os.environ.update(stack.env())
"""

from imgflow_localstack.errors import (
    DataDirInUseError,
    LocalStackError,
    PortInUseError,
    ProcessExitedError,
    StartTimeoutError,
)
from imgflow_localstack.ports import ProcessPorts, StackPorts, free_port
from imgflow_localstack.processes import ServiceGroup, ServiceProcess
from imgflow_localstack.readiness import HttpOk, LogLine
from imgflow_localstack.services import ServiceSpec, service_specs
from imgflow_localstack.stack import LocalStack
from imgflow_localstack.system import LocalSystem

__all__ = [
    "DataDirInUseError",
    "HttpOk",
    "LocalStack",
    "LocalStackError",
    "LocalSystem",
    "LogLine",
    "PortInUseError",
    "ProcessExitedError",
    "ProcessPorts",
    "ServiceGroup",
    "ServiceProcess",
    "ServiceSpec",
    "StackPorts",
    "StartTimeoutError",
    "free_port",
    "service_specs",
]

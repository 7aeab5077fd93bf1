"""The local dev mesh: embedded S3, every service that exists, Envoy; one command up, one down.

    from studio_dev.mesh import MeshConfig, start, stop, status
    state = start(MeshConfig(state_dir="var"))      # returns when every process is healthy
    print(state.endpoints, state.gateway_url)
    stop("var")

The CLI wraps it: ``viarte up [--foreground]``, ``viarte status``, ``viarte down``.
"""

from studio_dev.mesh.config import GRPC_SERVICES, MeshConfig, to_environ
from studio_dev.mesh.control import ProcessStatus, is_running, run_foreground, start, status, stop
from studio_dev.mesh.runner import MeshError, MeshState, ProcessInfo, Supervisor

__all__ = [
    "GRPC_SERVICES",
    "MeshConfig",
    "MeshError",
    "MeshState",
    "ProcessInfo",
    "ProcessStatus",
    "Supervisor",
    "is_running",
    "run_foreground",
    "start",
    "status",
    "stop",
    "to_environ",
]

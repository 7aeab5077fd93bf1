"""The dev mesh's state file (``<state_dir>/mesh/state.json``): what the supervisor started, where,
and how it is doing; read by ``viarte status``/``down`` from any shell."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["STATE_VERSION", "MeshState", "ProcessInfo", "Replica", "read_state", "write_state"]

STATE_VERSION = 1


@dataclass(frozen=True)
class Replica:
    """One process of a gRPC service. ``replica_id`` is stable across restarts (``inference-2``);
    ``name`` is the process's name in the state file: the service's own name when it runs alone."""

    service: str
    index: int
    count: int
    port: int
    metrics_port: int

    @property
    def replica_id(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def name(self) -> str:
        return self.service if self.count == 1 else self.replica_id


@dataclass
class ProcessInfo:
    name: str
    kind: str  # "grpc", "s3", "gateway", "postgres", "ray"
    status: str = "pending"  # pending, starting, running, skipped, failed, exited, stopped
    pid: int | None = None
    address: str = ""
    log: str = ""
    note: str = ""
    # Text fragments of the command line, checked before signalling a pid from another shell.
    match: str = ""
    # The gRPC service this process is a replica of ("" for s3, gateway, postgres).
    service: str = ""


@dataclass
class MeshState:
    state: str = "starting"  # starting, ready, failed, stopping, stopped
    supervisor_pid: int = 0
    state_dir: str = ""
    models: str = "tiny"
    started_at: float = 0.0
    error: str = ""
    endpoints: dict[str, str] = field(default_factory=dict)
    gateway_url: str = ""
    s3_endpoint: str = ""
    # Where browsers reach S3 (Envoy's S3 front); "" = s3_endpoint itself.
    s3_public_endpoint: str = ""
    processes: list[ProcessInfo] = field(default_factory=list)
    # Service → the addresses of all its replicas (endpoints holds the first one, for direct clients).
    replicas: dict[str, list[str]] = field(default_factory=dict)
    # "sqlite" or "postgres" (then postgres_address is the embedded server's host:port).
    database: str = "sqlite"
    postgres_address: str = ""
    # The local Ray cluster's GCS address (`viarte up --ray`), "" without one.
    ray_address: str = ""
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> MeshState:
        data = json.loads(text)
        procs = [ProcessInfo(**p) for p in data.pop("processes", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(processes=procs, **{k: v for k, v in data.items() if k in known})

    @property
    def editor_url(self) -> str:
        return f"{self.gateway_url}/" if self.gateway_url else ""

    def process(self, name: str) -> ProcessInfo | None:
        return next((p for p in self.processes if p.name == name), None)


def write_state(path: Path, state: MeshState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(state.to_json())
    tmp.replace(path)


def read_state(path: Path) -> MeshState | None:
    try:
        return MeshState.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None

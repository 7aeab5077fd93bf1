"""Configuration of the local dev mesh (environment prefix ``VIARTE_MESH_``, see services.kit.config)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from services.kit.config import Secret, ServiceConfig, env_names

__all__ = ["GRPC_SERVICES", "REPLICA_PORT_STRIDE", "MeshConfig", "to_environ"]

# Start order: each service may call the ones before it (account serves the job services' job-end
# calls only, which come after everything is up; last, so the others keep their metrics ports).
GRPC_SERVICES = ("auth", "storage", "inference", "render", "account")
REPLICA_PORT_STRIDE = 100


@dataclass(frozen=True)
class MeshConfig(ServiceConfig):
    service_name: ClassVar[str] = "mesh"

    # Logs, data and the mesh's state file live here (var/logs, var/data/<svc>, var/mesh/state.json).
    state_dir: str = "var"
    # Every port below is ignored when free_ports is set (tests, parallel meshes).
    free_ports: bool = False
    auth_port: int = 50051
    storage_port: int = 50052
    inference_port: int = 50053
    render_port: int = 50054
    account_port: int = 50055
    # Metrics ports are 9101.. in order of GRPC_SERVICES; -1 = no metrics endpoints.
    metrics_base_port: int = 9101
    gateway_port: int = 8800
    gateway_admin_port: int = 9901
    # Envoy's S3 front (browsers' presigned uploads and downloads, with nosniff): storage signs its
    # presigned URLs for it whenever the gateway runs; services still reach S3 directly.
    gateway_s3_front_port: int = 8801
    s3_port: int = 8333
    s3_access_key: str = "viarte-dev"
    s3_secret_key: Secret = Secret("viarte-dev-secret")
    # Which services to start (those whose package has no __main__ yet are skipped).
    services: tuple[str, ...] = GRPC_SERVICES
    s3: bool = True
    gateway: bool = True
    # Envoy connects to the services from this loopback address, and auth trusts the client address
    # Envoy appends to x-forwarded-for from this peer only (trusted_proxies); every other local
    # caller's headers are ignored. "" = the OS picks and auth trusts nobody (e.g. macOS, where only
    # 127.0.0.1 is configured on lo0).
    gateway_source_address: str = "127.0.0.2"
    # "tiny" (random-weight local models, CPU, offline) or "real" (the registry's real model ids).
    models: str = "tiny"
    # Seconds to wait for each process's health check, and for each to stop before SIGKILL.
    startup_timeout_seconds: float = 180.0
    stop_timeout_seconds: float = 10.0
    # A service that fails its health check is stopped and reported, and the others start anyway
    # (test sessions); by default the whole start fails.
    keep_going: bool = False
    # Extra "VIARTE_...=value" assignments handed to every child (e.g. VIARTE_AUTH_BCRYPT_COST=4).
    child_env: tuple[str, ...] = ()
    # "sqlite" (one file per service under data/<svc>) or "postgres": one embedded PostgreSQL
    # (initdb under <state_dir>/postgres, 127.0.0.1, a free port) with one database per service.
    database: str = "sqlite"
    # Where the embedded PostgreSQL's initdb/pg_ctl live; "" = the newest /usr/lib/postgresql/*/bin, then PATH.
    postgres_bin_dir: str = ""
    # Processes per gRPC service (replica ids <svc>-1..<svc>-N); > 1 needs database=postgres, since
    # replicas share their job queue, limits and sessions through the database.
    replicas: int = 1
    # Per-service overrides of ``replicas`` (VIARTE_MESH_<SVC>_REPLICAS); 0 = ``replicas``.
    auth_replicas: int = 0
    storage_replicas: int = 0
    inference_replicas: int = 0
    render_replicas: int = 0
    account_replicas: int = 0
    # `viarte up --ray`: a local Ray cluster, a head plus ray_nodes worker nodes each declaring one
    # logical GPU (studio_dev/mesh/ray.py); inference and render then run device work on it
    # (VIARTE_<SVC>_EXECUTOR=ray). Per node: CPUs declared and the object store's size.
    ray: bool = False
    ray_nodes: int = 2
    ray_node_cpus: int = 1
    ray_object_store_mb: int = 256

    @property
    def root(self) -> Path:
        return Path(self.state_dir).absolute()

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "mesh" / "state.json"

    def service_data_dir(self, name: str) -> Path:
        return self.root / "data" / name

    def service_port(self, name: str, replica: int = 1) -> int:
        # Replica i listens 100 ports above replica i-1 (the services' own ports are consecutive).
        return int(getattr(self, f"{name}_port")) + REPLICA_PORT_STRIDE * (replica - 1)

    def service_metrics_port(self, name: str, replica: int = 1) -> int:
        if self.metrics_base_port < 0:
            return -1
        return self.metrics_base_port + GRPC_SERVICES.index(name) + REPLICA_PORT_STRIDE * (replica - 1)

    def replica_count(self, name: str) -> int:
        return int(getattr(self, f"{name}_replicas", 0)) or self.replicas

    @property
    def uses_postgres(self) -> bool:
        return self.database == "postgres"

    def validate(self) -> None:
        """Refuses a shape the mesh cannot run, with a message naming the setting to change."""
        if self.database not in ("sqlite", "postgres"):
            raise ValueError(f"VIARTE_MESH_DATABASE must be 'sqlite' or 'postgres', not {self.database!r}")
        for name in GRPC_SERVICES:
            count = self.replica_count(name)
            if count < 1:
                raise ValueError(f"{name}: replicas must be at least 1, not {count}")
            if count > 1 and not self.uses_postgres:
                raise ValueError(
                    f"{name}: {count} replicas need a shared PostgreSQL (replicas share jobs, limits and "
                    "sessions through the database; SQLite is one process's file): use --postgres "
                    "(VIARTE_MESH_DATABASE=postgres) or --replicas 1"
                )
        self._validate_ray()

    def _validate_ray(self) -> None:
        if self.ray_nodes < 1:
            raise ValueError(f"VIARTE_MESH_RAY_NODES must be at least 1, not {self.ray_nodes}")
        for service in ("inference", "render"):
            replicas = self.replica_count(service)
            if self.ray and self.ray_nodes < replicas:
                # Each replica creates its own actors, one per logical GPU: every replica needs one.
                raise ValueError(
                    f"--ray with {replicas} {service} replicas needs at least {replicas} Ray nodes "
                    f"(VIARTE_MESH_RAY_NODES={self.ray_nodes}): one GPU actor per replica at least"
                )

    def ray_actors(self, replica: int, service: str = "inference") -> int:
        """This replica's share of the cluster's logical GPUs (replica 1..N of ``service``)."""
        count = self.replica_count(service)
        return self.ray_nodes // count + (1 if replica <= self.ray_nodes % count else 0)

    def child_overrides(self) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in self.child_env if "=" in item)
        return {k.strip(): v for k, v in pairs}


def to_environ(config: ServiceConfig, *, only_changed: bool = True) -> dict[str, str]:
    """The environment variables that ``load_config`` turns back into ``config`` (the inverse of
    load_config): how the mesh hands configs to child processes."""
    out: dict[str, str] = {}
    defaults = type(config)()
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if only_changed and value == getattr(defaults, f.name):
            continue
        out[env_names(type(config), f.name)[0]] = _format(value)
    return out


def _format(value: object) -> str:
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def merged(base: Mapping[str, str], *layers: Mapping[str, str]) -> dict[str, str]:
    out = dict(base)
    for layer in layers:
        out.update(layer)
    return out

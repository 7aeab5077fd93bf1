"""The dev mesh supervisor: starts every process of the local mesh, watches them, stops them.

One supervisor process (``python -m studio_dev.mesh supervise``) owns the mesh: the embedded S3
server (SeaweedFS), one ``python -m services.<svc>`` per service that exists, and Envoy when the
gateway package is present. It starts them in dependency order, waits on each one's health
(gRPC ``grpc.health.v1`` for services, signed S3 requests, Envoy's active health checks), writes
``<state_dir>/mesh/state.json`` for ``viarte status``/``down`` in any shell, and on SIGTERM/SIGINT
stops them in reverse order (SIGTERM, then SIGKILL of the process group after a timeout).

Children run in their own sessions (so a terminal's Ctrl-C reaches only the supervisor, which then
stops them in order) and receive SIGTERM if the supervisor dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import importlib
import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.config import ENV_PREFIX, ServiceConfig
from services.kit.ports import free_port
from studio_dev.mesh.config import GRPC_SERVICES, MeshConfig
from studio_dev.mesh.postgres import EmbeddedPostgres, PostgresError
from studio_dev.mesh.ray import LocalRay, RayError
from studio_dev.mesh.state import MeshState, ProcessInfo, Replica, read_state, write_state

__all__ = [
    "REPO_ROOT", "MeshError", "MeshState", "ProcessInfo", "Replica", "Supervisor", "read_state", "write_state",
]  # fmt: skip

REPO_ROOT = Path(__file__).resolve().parents[2]


class MeshError(RuntimeError):
    """The mesh could not start (a process failed its health check) or is in an unexpected state."""


def service_exists(name: str) -> bool:
    """Whether ``python -m services.<name>`` can run (the package and its __main__ exist)."""
    try:
        return importlib.util.find_spec(f"services.{name}.__main__") is not None
    except (ImportError, ValueError):
        return False


def config_class(name: str) -> type[ServiceConfig] | None:
    """The service's config dataclass (``services.<name>.config``), to know which fields it has."""
    try:
        module = importlib.import_module(f"services.{name}.config")
    except Exception:
        return None
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, ServiceConfig)
            and getattr(value, "service_name", "") == name
        ):
            return value
    return None


def registry_model_ids(tiny: bool) -> list[str]:
    """Model ids of the inference registry whose weights are tiny (``source: tiny:...``) or real."""
    import yaml

    path = REPO_ROOT / "services" / "inference" / "models" / "registry.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    entries = data.get("models", []) if isinstance(data, dict) else []
    return [
        str(m["id"])
        for m in entries
        if isinstance(m, dict) and "id" in m and str(m.get("source", "")).startswith("tiny:") == tiny
    ]


def _model_mode(mode: str) -> dict[str, object]:
    """Config values per models mode. tiny: random-weight models built locally, CPU, offline.
    real: the registry's real weights (GPU machine; downloads allowed)."""
    tiny = mode == "tiny"
    values: dict[str, object] = {
        "build_tiny_models": tiny,
        "face_use_tiny": tiny,
        "upscale_allow_tiny": tiny,
        "allow_download": not tiny,
    }
    ids = registry_model_ids(tiny)
    if ids:
        values["models"] = ",".join(ids)
    return values


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM when the supervisor dies, so a crash leaves no strays.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def inherited_environment() -> dict[str, str]:
    """The supervisor's own environment, passed on to children (PATH, HOME, locale...).
    Copying it is not configuration: every VIARTE_* value children read is set explicitly."""
    return dict(os.environ)


class Supervisor:
    """Starts and stops the whole mesh. ``await run_forever()`` is the supervisor's main."""

    def __init__(self, config: MeshConfig) -> None:
        self.config = config
        self.state = MeshState(
            supervisor_pid=os.getpid(),
            state_dir=str(config.root),
            models=config.models,
            started_at=time.time(),
        )
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._log_files: list[Any] = []
        self._s3: Any = None
        self._envoy: Any = None
        self._internal_secret = secrets.token_urlsafe(32)
        self._ports: dict[str, int] = {}
        self._replicas: dict[str, list[Replica]] = {}
        self._postgres: EmbeddedPostgres | None = None
        self._ray: LocalRay | None = None

    # -- ports ------------------------------------------------------------------------------
    def _plan_ports(self) -> None:
        cfg = self.config
        for name in GRPC_SERVICES:
            count = cfg.replica_count(name)
            self._replicas[name] = [
                Replica(name, i, count, port=self._port(name, i), metrics_port=self._metrics_port(name, i))
                for i in range(1, count + 1)
            ]
            addresses = [f"{cfg.host}:{r.port}" for r in self._replicas[name]]
            self.state.replicas[name] = addresses
            self.state.endpoints[name] = addresses[0]
            self._ports[name] = self._replicas[name][0].port
        if self.config.gateway and self.config.s3 and importlib.util.find_spec("gateway") is not None:
            # Known before storage starts: it signs presigned URLs for this host:port.
            self._ports["s3_front"] = (
                free_port() if self.config.free_ports else self.config.gateway_s3_front_port
            )
            self.state.s3_public_endpoint = f"http://127.0.0.1:{self._ports['s3_front']}"

    def _port(self, name: str, index: int) -> int:
        return free_port() if self.config.free_ports else self.config.service_port(name, index)

    def _metrics_port(self, name: str, index: int) -> int:
        return -1 if self.config.free_ports else self.config.service_metrics_port(name, index)

    def replicas(self, name: str) -> list[Replica]:
        if not self._replicas:
            self._plan_ports()
        return self._replicas[name]

    # -- environment ------------------------------------------------------------------------
    def service_environment(self, name: str, replica: Replica | None = None) -> dict[str, str]:
        """VIARTE_<SVC>_<FIELD> for every field the service's config has."""
        cfg = self.config
        replica = replica or self.replicas(name)[0]
        values: dict[str, object] = {
            "host": cfg.host,
            "port": replica.port,
            "metrics_port": replica.metrics_port,
            # Replicas keep their scratch apart (a replica's startup cleanup must not touch another's).
            "data_dir": str(cfg.service_data_dir(replica.name)),
            "replica_id": replica.replica_id,
            "log_format": "json",
            "log_level": cfg.log_level,
            "internal_secret": self._internal_secret,
            "jwt_issuer": cfg.jwt_issuer,
            "jwt_audience": cfg.jwt_audience,
            # Dev receivers listen on this machine (the account service refuses private webhook
            # URLs by default).
            "webhook_allow_private": True,
        }
        for other in GRPC_SERVICES:
            # Every replica: the services' channels balance over them (services.kit.channels).
            values[f"{other}_address"] = ",".join(
                self.state.replicas.get(other) or [self.state.endpoints[other]]
            )
        if self._postgres is not None:
            values["database_url"] = self._postgres.url(name)
        if self._ray is not None and name in ("inference", "render"):
            values["ray_actors"] = cfg.ray_actors(replica.index, name)  # its share of the logical GPUs
        if cfg.gateway and cfg.gateway_source_address:
            values["trusted_proxies"] = cfg.gateway_source_address
        if self.state.s3_endpoint:
            values.update(
                s3_endpoint=self.state.s3_endpoint,
                s3_access_key=cfg.s3_access_key,
                s3_secret_key=cfg.s3_secret_key.reveal(),
                s3_embedded=False,
                s3_public_endpoint=self.state.s3_public_endpoint,
            )
        values.update(_model_mode(cfg.models))
        cls = config_class(name)
        # replica_id is passed even to a config without the field yet (the job layer reads it).
        fields = {f.name for f in dataclasses.fields(cls or ServiceConfig)} | {"replica_id"}
        env: dict[str, str] = {}
        for key, value in values.items():
            if key in fields:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                env[f"{ENV_PREFIX}{name.upper()}_{key.upper()}"] = text
        if self._ray is not None and name in ("inference", "render"):
            # Each GPU holds one inference and one render actor (half a GPU each, spread over nodes).
            env[f"{ENV_PREFIX}{name.upper()}_EXECUTOR"] = "ray"
            env[f"{ENV_PREFIX}{name.upper()}_RAY_ADDRESS"] = self._ray.address
        env.update(cfg.child_overrides())
        return env

    # -- start ------------------------------------------------------------------------------
    async def start(self) -> MeshState:
        cfg = self.config
        cfg.logs_dir.mkdir(parents=True, exist_ok=True)
        self._plan_ports()
        self._save()
        try:
            try:
                cfg.validate()
            except ValueError as exc:
                raise MeshError(str(exc)) from None
            if cfg.uses_postgres:
                await self._start_postgres()
            if cfg.s3:
                await self._start_s3()
            if cfg.ray:
                await self._start_ray()
            for name in GRPC_SERVICES:
                await self._start_service(name)
            if cfg.gateway:
                await self._start_gateway()
        except BaseException as exc:
            self._say(f"failed: {exc}")
            self.state.state, self.state.error = "failed", str(exc)
            self._save()
            await self.stop()
            self.state.state = "failed"
            self._save()
            raise
        self.state.state = "ready"
        self._say("ready")
        self._save()
        return self.state

    def _say(self, message: str) -> None:
        """One line per lifecycle event on the supervisor's stdout (logs/mesh.log when detached)."""
        print(f"{time.strftime('%H:%M:%S')} mesh: {message}", flush=True)

    def _link_log(self, name: str, target: Path) -> Path:
        """Every process's log is reachable as logs/<name>.log, wherever the process writes it."""
        link = self.config.logs_dir / f"{name}.log"
        with contextlib.suppress(OSError):
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
        return link

    def _save(self) -> None:
        write_state(self.config.state_file, self.state)

    async def _start_s3(self) -> None:
        info = ProcessInfo("s3", "s3", match="weed")
        self.state.processes.append(info)
        try:
            from services.storage.s3server import start_s3_server
        except ImportError:
            info.status, info.note = "skipped", "services.storage.s3server not present"
            return
        info.status = "starting"
        self._save()
        data = self.config.service_data_dir("s3")
        data.mkdir(parents=True, exist_ok=True)
        port = 0 if self.config.free_ports else self.config.s3_port
        self._s3 = await start_s3_server(
            data,
            port,
            self.config.s3_access_key,
            self.config.s3_secret_key.reveal(),
            startup_timeout=self.config.startup_timeout_seconds,
        )
        self.state.s3_endpoint = self._s3.endpoint
        info.status, info.pid, info.address = "running", self._s3.pid, self._s3.endpoint
        info.log = str(self._link_log("s3", Path(self._s3.log_path)))
        self._say(f"s3 ready at {info.address}")
        self._save()

    async def _start_postgres(self) -> None:
        info = ProcessInfo("postgres", "postgres", match="postgres")
        self.state.processes.append(info)
        info.status = "starting"
        self._save()
        try:
            self._postgres = EmbeddedPostgres(self.config.root, bin_dir=self.config.postgres_bin_dir)
            await self._postgres.start(GRPC_SERVICES)
        except (PostgresError, OSError, subprocess.SubprocessError) as exc:
            info.status, info.note = "failed", str(exc)
            raise MeshError(f"embedded PostgreSQL: {exc}") from None
        self.state.database, self.state.postgres_address = "postgres", self._postgres.address
        info.status, info.pid, info.address = "running", self._postgres.pid, self._postgres.address
        info.log = str(self._link_log("postgres", self._postgres.log_path))
        self._say(f"postgres ready at {info.address} (data in {self._postgres.data_dir})")
        self._save()

    async def _start_ray(self) -> None:
        cfg = self.config
        try:
            self._ray = LocalRay(cfg.root, cfg.ray_nodes, logs_dir=cfg.logs_dir, cpus_per_node=cfg.ray_node_cpus,
                                 object_store_mb=cfg.ray_object_store_mb, startup_timeout=cfg.startup_timeout_seconds)
        except RayError as exc:
            raise MeshError(str(exc)) from None
        infos = [ProcessInfo(n.name, "ray", "starting", match="ray start", log=str(n.log),
                             note=f"{n.gpus} logical GPU" if n.gpus else "head") for n in self._ray.nodes]  # fmt: skip
        self.state.processes.extend(infos)
        self._save()
        try:
            await self._ray.start()
        except (RayError, OSError) as exc:
            raise MeshError(f"local Ray cluster: {exc}") from None
        finally:
            for node, info in zip(self._ray.nodes, infos, strict=True):
                info.pid = node.pid
        for info in infos:
            info.status, info.address = "running", self._ray.address if info.name == "ray-head" else ""
        self.state.ray_address = self._ray.address
        self._say(f"ray ready at {self._ray.address} ({cfg.ray_nodes} nodes, one logical GPU each)")
        self._save()

    async def _start_service(self, name: str) -> None:
        """Starts every replica of ``name`` at once (they migrate together: services.kit.db takes
        an advisory lock), then waits until each one is SERVING."""
        replicas = self.replicas(name)
        infos = [
            ProcessInfo(
                r.name, "grpc", address=f"{self.config.host}:{r.port}", match=f"services.{name}", service=name
            )
            for r in replicas
        ]
        self.state.processes.extend(infos)
        if name not in self.config.services:
            for info in infos:
                info.status, info.note = "skipped", "not selected"
            return
        if not service_exists(name):
            for info in infos:
                info.status, info.note = "skipped", f"services/{name}/__main__.py does not exist yet"
            self._say(f"{name} skipped: {infos[0].note}")
            return
        for replica, info in zip(replicas, infos, strict=True):
            await self._spawn(replica, info)
        self._save()
        results = await asyncio.gather(
            *(self._await_replica(r, info) for r, info in zip(replicas, infos, strict=True)),
            return_exceptions=True,
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None and not self.config.keep_going:
            raise failure

    async def _spawn(self, replica: Replica, info: ProcessInfo) -> None:
        self.config.service_data_dir(replica.name).mkdir(parents=True, exist_ok=True)
        log_path = self.config.logs_dir / f"{replica.name}.log"
        log = log_path.open("ab")
        self._log_files.append(log)
        env = {**inherited_environment(), **self.service_environment(replica.service, replica)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"services.{replica.service}",
            cwd=str(REPO_ROOT), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
        self._procs[replica.name] = proc
        info.status, info.pid, info.log = "starting", proc.pid, str(log_path)

    async def _await_replica(self, replica: Replica, info: ProcessInfo) -> None:
        proc = self._procs[replica.name]
        try:
            await self._wait_serving(replica.name, proc, info.address)
        except MeshError as exc:
            info.status, info.note = "failed", str(exc)
            if not self.config.keep_going:
                raise
            # Test sessions keep the rest of the mesh up: the other services' tests still run,
            # and the mesh's own tests report this one as not running.
            self._say(f"{replica.name} failed, continuing without it: {exc}")
            await _terminate(self._procs.pop(replica.name), self.config.stop_timeout_seconds)
            self._save()
            return
        info.status = "running"
        self._say(f"{replica.name} serving on {info.address}")
        self._save()

    async def _wait_serving(self, name: str, proc: asyncio.subprocess.Process, address: str) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_seconds
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if proc.returncode is not None:
                    raise MeshError(
                        f"{name} exited with {proc.returncode} during startup:\n{_tail(self.config.logs_dir / f'{name}.log')}"
                    )
                with contextlib.suppress(grpc.RpcError):
                    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                await asyncio.sleep(0.2)
        raise MeshError(
            f"{name} not SERVING after {self.config.startup_timeout_seconds}s:\n{_tail(self.config.logs_dir / f'{name}.log')}"
        )

    async def _start_gateway(self) -> None:
        info = ProcessInfo("gateway", "gateway", match="envoy")
        self.state.processes.append(info)
        try:
            from gateway.config import GatewayConfig
            from gateway.envoy import start_envoy
        except ImportError:
            info.status, info.note = "skipped", "gateway package not present"
            return
        free = self.config.free_ports
        static_dir = GatewayConfig().static_dir
        if not (Path(static_dir) / "index.html").exists():
            # gRPC(-Web) routing works without the editor; only the static files are missing.
            static_dir, info.note = "", "editor not built (npm run build in gateway/editor)"
        gw = GatewayConfig(
            static_dir=static_dir,
            port=0 if free else self.config.gateway_port,
            admin_port=0 if free else self.config.gateway_admin_port,
            # Each cluster holds every replica, health checked one by one.
            auth_address=self._running_addresses("auth"),
            storage_address=self._running_addresses("storage"),
            inference_address=self._running_addresses("inference"),
            render_address=self._running_addresses("render"),
            account_address=self._running_addresses("account"),
            upstream_source_address=self.config.gateway_source_address,
            s3_front_upstream=urlsplit(self.state.s3_endpoint).netloc
            if self.state.s3_public_endpoint
            else "",
            s3_front_port=self._ports.get("s3_front", 0),
        )
        info.status = "starting"
        self._save()
        workdir = self.config.root / "gateway"
        self._envoy = await start_envoy(
            gw, workdir=workdir, ready_timeout=self.config.startup_timeout_seconds
        )
        running = {p.service for p in self.state.processes if p.kind == "grpc" and p.status == "running"}
        await self._envoy.wait_healthy(running, within=self.config.startup_timeout_seconds)
        self.state.gateway_url = self._envoy.url
        info.status, info.pid, info.address = "running", self._envoy.process.pid, self._envoy.url
        info.log = str(self._link_log("gateway", Path(self._envoy.log_path)))
        self._say(f"gateway ready at {info.address}")
        self._save()

    def _running_addresses(self, name: str) -> str:
        """The cluster's endpoints: replicas that came up (all of them when none did, so Envoy's
        config stays valid and the cluster reports unhealthy)."""
        running = [p.address for p in self.state.processes if p.service == name and p.status == "running"]
        return ",".join(running or self.state.replicas[name])

    # -- run --------------------------------------------------------------------------------
    async def run_forever(self, ready: Any = None) -> None:
        """Start, then supervise until SIGTERM/SIGINT; always stop everything on the way out."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        try:
            starter = asyncio.ensure_future(self.start())
            stopper = asyncio.ensure_future(stopping.wait())
            await asyncio.wait([starter, stopper], return_when=asyncio.FIRST_COMPLETED)
            if not starter.done():
                starter.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starter
                return
            starter.result()
            if ready is not None:
                ready(self.state)
            while not stopping.is_set():
                self._reap()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 1.0)
        finally:
            await self.stop()

    def _reap(self) -> None:
        """Marks children that died on their own (the mesh keeps running without them)."""
        changed = False
        for name, proc in self._procs.items():
            info = self.state.process(name)
            if info is not None and proc.returncode is not None and info.status == "running":
                info.status, info.note = "exited", f"exit code {proc.returncode}; see {info.log}"
                changed = True
        if changed:
            self._save()

    # -- stop -------------------------------------------------------------------------------
    async def stop(self) -> None:
        if self.state.state in ("stopped",):
            return
        self.state.state = "stopping" if self.state.state != "failed" else "failed"
        self._save()
        if self._envoy is not None:
            with contextlib.suppress(Exception):
                await self._envoy.stop(self.config.stop_timeout_seconds)
            self._mark("gateway", "stopped")
            self._envoy = None
        # Services in reverse start order; those that call others stop first (replicas together).
        for name in reversed(GRPC_SERVICES):
            names = [r.name for r in self._replicas.get(name, [])]
            procs = {n: self._procs.pop(n) for n in names if n in self._procs}
            await asyncio.gather(*(_terminate(p, self.config.stop_timeout_seconds) for p in procs.values()))
            for process_name in procs:
                self._mark(process_name, "stopped")
        if self._ray is not None:  # after the services: their actors go with the nodes
            with contextlib.suppress(Exception):
                await self._ray.stop(self.config.stop_timeout_seconds)
            for node in self._ray.nodes:
                self._mark(node.name, "stopped")
            self._ray = None
        if self._s3 is not None:
            with contextlib.suppress(Exception):
                await self._s3.stop()
            self._mark("s3", "stopped")
            self._s3 = None
        if self._postgres is not None:  # last: every service has closed its connections
            with contextlib.suppress(Exception):
                await self._postgres.stop(self.config.stop_timeout_seconds * 3)
            self._mark("postgres", "stopped")
            self._postgres = None
        for fh in self._log_files:
            fh.close()
        self._log_files.clear()
        if self.state.state != "failed":
            self.state.state = "stopped"
        self._say("stopped")
        self._save()

    def _mark(self, name: str, status: str) -> None:
        info = self.state.process(name)
        if info is not None and info.status not in ("skipped", "failed"):
            info.status = status


async def _terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the child; SIGKILL its whole process group if it is still there after ``grace`` seconds."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    # Grandchildren (worker processes) share the child's group: sweep any that outlived it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""

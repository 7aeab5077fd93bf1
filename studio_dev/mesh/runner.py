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
import json
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.config import ENV_PREFIX, ServiceConfig
from studio_dev.mesh.config import GRPC_SERVICES, MeshConfig

__all__ = ["REPO_ROOT", "MeshError", "MeshState", "ProcessInfo", "Supervisor", "read_state", "write_state"]

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_VERSION = 1


class MeshError(RuntimeError):
    """The mesh could not start (a process failed its health check) or is in an unexpected state."""


@dataclass
class ProcessInfo:
    name: str
    kind: str  # "grpc", "s3", "gateway"
    status: str = "pending"  # pending, starting, running, skipped, failed, exited, stopped
    pid: int | None = None
    address: str = ""
    log: str = ""
    note: str = ""
    # Text fragments of the command line, checked before signalling a pid from another shell.
    match: str = ""


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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


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
        if isinstance(value, type) and issubclass(value, ServiceConfig) and getattr(value, "service_name", "") == name:
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
        str(m["id"]) for m in entries
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
            supervisor_pid=os.getpid(), state_dir=str(config.root), models=config.models, started_at=time.time()
        )
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._log_files: list[Any] = []
        self._s3: Any = None
        self._envoy: Any = None
        self._internal_secret = secrets.token_urlsafe(32)
        self._ports: dict[str, int] = {}

    # -- ports ------------------------------------------------------------------------------
    def _plan_ports(self) -> None:
        for name in GRPC_SERVICES:
            self._ports[name] = free_port() if self.config.free_ports else self.config.service_port(name)
        for name in GRPC_SERVICES:
            self.state.endpoints[name] = f"{self.config.host}:{self._ports[name]}"
        if self.config.gateway and self.config.s3 and importlib.util.find_spec("gateway") is not None:
            # Known before storage starts: it signs presigned URLs for this host:port.
            self._ports["s3_front"] = free_port() if self.config.free_ports else self.config.gateway_s3_front_port
            self.state.s3_public_endpoint = f"http://127.0.0.1:{self._ports['s3_front']}"

    def _metrics_port(self, name: str) -> int:
        return -1 if self.config.free_ports else self.config.service_metrics_port(name)

    # -- environment ------------------------------------------------------------------------
    def service_environment(self, name: str) -> dict[str, str]:
        """VIARTE_<SVC>_<FIELD> for every field the service's config has."""
        cfg = self.config
        values: dict[str, object] = {
            "host": cfg.host,
            "port": self._ports[name],
            "metrics_port": self._metrics_port(name),
            "data_dir": str(cfg.service_data_dir(name)),
            "log_format": "json",
            "log_level": cfg.log_level,
            "internal_secret": self._internal_secret,
            "jwt_issuer": cfg.jwt_issuer,
            "jwt_audience": cfg.jwt_audience,
        }
        for other in GRPC_SERVICES:
            values[f"{other}_address"] = self.state.endpoints[other]
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
        fields = {f.name for f in dataclasses.fields(cls or ServiceConfig)}
        env: dict[str, str] = {}
        for key, value in values.items():
            if key in fields:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                env[f"{ENV_PREFIX}{name.upper()}_{key.upper()}"] = text
        env.update(cfg.child_overrides())
        return env

    # -- start ------------------------------------------------------------------------------
    async def start(self) -> MeshState:
        cfg = self.config
        cfg.logs_dir.mkdir(parents=True, exist_ok=True)
        self._plan_ports()
        self._save()
        try:
            if cfg.s3:
                await self._start_s3()
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
            data, port, self.config.s3_access_key, self.config.s3_secret_key.reveal(),
            startup_timeout=self.config.startup_timeout_seconds,
        )
        self.state.s3_endpoint = self._s3.endpoint
        info.status, info.pid, info.address = "running", self._s3.pid, self._s3.endpoint
        info.log = str(self._link_log("s3", Path(self._s3.log_path)))
        self._say(f"s3 ready at {info.address}")
        self._save()

    async def _start_service(self, name: str) -> None:
        info = ProcessInfo(name, "grpc", address=self.state.endpoints[name], match=f"services.{name}")
        self.state.processes.append(info)
        if name not in self.config.services:
            info.status, info.note = "skipped", "not selected"
            return
        if not service_exists(name):
            info.status, info.note = "skipped", f"services/{name}/__main__.py does not exist yet"
            self._say(f"{name} skipped: {info.note}")
            return
        self.config.service_data_dir(name).mkdir(parents=True, exist_ok=True)
        log_path = self.config.logs_dir / f"{name}.log"
        log = log_path.open("ab")
        self._log_files.append(log)
        env = {**inherited_environment(), **self.service_environment(name)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"services.{name}",
            cwd=str(REPO_ROOT), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
        self._procs[name] = proc
        info.status, info.pid, info.log = "starting", proc.pid, str(log_path)
        self._save()
        try:
            await self._wait_serving(name, proc, info.address)
        except MeshError as exc:
            info.status, info.note = "failed", str(exc)
            if not self.config.keep_going:
                raise
            # Test sessions keep the rest of the mesh up: the other services' tests still run,
            # and the mesh's own tests report this one as not running.
            self._say(f"{name} failed, continuing without it: {exc}")
            await _terminate(self._procs.pop(name), self.config.stop_timeout_seconds)
            self._save()
            return
        info.status = "running"
        self._say(f"{name} serving on {info.address}")
        self._save()

    async def _wait_serving(self, name: str, proc: asyncio.subprocess.Process, address: str) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_seconds
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if proc.returncode is not None:
                    raise MeshError(f"{name} exited with {proc.returncode} during startup:\n{_tail(self.config.logs_dir / f'{name}.log')}")
                with contextlib.suppress(grpc.RpcError):
                    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                await asyncio.sleep(0.2)
        raise MeshError(f"{name} not SERVING after {self.config.startup_timeout_seconds}s:\n{_tail(self.config.logs_dir / f'{name}.log')}")

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
            auth_address=self.state.endpoints["auth"],
            storage_address=self.state.endpoints["storage"],
            inference_address=self.state.endpoints["inference"],
            render_address=self.state.endpoints["render"],
            upstream_source_address=self.config.gateway_source_address,
            s3_front_upstream=urlsplit(self.state.s3_endpoint).netloc if self.state.s3_public_endpoint else "",
            s3_front_port=self._ports.get("s3_front", 0),
        )
        info.status = "starting"
        self._save()
        workdir = self.config.root / "gateway"
        self._envoy = await start_envoy(gw, workdir=workdir, ready_timeout=self.config.startup_timeout_seconds)
        running = [p.name for p in self.state.processes if p.kind == "grpc" and p.status == "running"]
        await self._envoy.wait_healthy(running, within=self.config.startup_timeout_seconds)
        self.state.gateway_url = self._envoy.url
        info.status, info.pid, info.address = "running", self._envoy.process.pid, self._envoy.url
        info.log = str(self._link_log("gateway", Path(self._envoy.log_path)))
        self._say(f"gateway ready at {info.address}")
        self._save()

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
        # Services in reverse start order; those that call others stop first.
        for name in reversed(GRPC_SERVICES):
            proc = self._procs.pop(name, None)
            if proc is not None:
                await _terminate(proc, self.config.stop_timeout_seconds)
                self._mark(name, "stopped")
        if self._s3 is not None:
            with contextlib.suppress(Exception):
                await self._s3.stop()
            self._mark("s3", "stopped")
            self._s3 = None
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

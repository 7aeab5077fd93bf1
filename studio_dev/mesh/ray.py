"""The dev mesh's local Ray cluster (``viarte up --ray``): a head plus N worker nodes on this machine.

Each node is one ``ray start --block`` process in a session of its own: the head declares no GPU
(the GCS, the dashboard's job API), every worker node declares one logical GPU (``--num-gpus=1``)
and one CPU, so the inference service's Ray executor creates one `DeviceActor` per worker node,
as it would per GPU of a real cluster. Nodes start one after another (Ray gives a node 30 s to
register with the GCS, which a loaded 2-core machine can miss when several start at once), then
the start waits until the cluster reports N GPUs.

Ports: every port Ray would otherwise take at a fixed default (GCS 6379, dashboard 8265, the
dashboard agent 52365, the client server 10001, workers 10002-19999) is a free one, so a user's own
Ray and parallel meshes are untouched. Nodes bind 127.0.0.1 where Ray allows; Ray rewrites that to
the host's address, so its ports listen there too (nothing leaves the machine).

Stopping never uses ``ray stop`` (it kills every Ray process of the user on the machine): each
node's session is signalled, and every process still in one of those sessions (Ray's own
components and the workers it forked, whatever their process titles) is killed, see `kill_sessions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from services.kit.ports import free_port

__all__ = ["LocalRay", "RayError", "RayNode", "cluster_gpus", "find_ray", "kill_sessions", "session_members"]

# <temp>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store.<n> must fit a Unix socket path
# (107 bytes): a longer temp dir moves to a short folder of its own, linked from the state dir.
_MAX_TEMP_DIR = 40
_STARTED = "Ray runtime started"
REPO_ROOT = Path(__file__).resolve().parents[2]
_GPU_LINE = re.compile(r"([\d.]+)/([\d.]+) GPU\b")


class RayError(RuntimeError):
    """A Ray node failed to start or the cluster did not show its GPUs in time."""


@dataclass
class RayNode:
    name: str  # "ray-head", "ray-node-1" ...
    role: str  # "head" or "worker"
    gpus: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


def find_ray() -> Path:
    """The ``ray`` command of this interpreter's environment (the ``[ray]`` extra), else PATH."""
    beside = Path(sys.executable).parent / "ray"
    if beside.exists():
        return beside
    found = shutil.which("ray")
    if found:
        return Path(found)
    raise RayError("the `ray` command is not installed: pip install 'viarte-studio[ray]' (Ray 2.60)")


def session_members(sid: int) -> list[int]:
    """Pids of the live processes in session ``sid`` (Linux /proc; empty elsewhere). A pid stays
    reserved while it is some live process's session id, so these are the session's own."""
    members: list[int] = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp session ...; a zombie holds nothing but its exit status.
        if len(fields) > 3 and fields[3] == str(sid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def kill_sessions(sids: list[int], *, grace: float = 5.0) -> None:
    """SIGTERM every process of these sessions, SIGKILL those left after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for sid in sids:
            for pid in session_members(sid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and any(session_members(s) for s in sids):
            time.sleep(0.1)


def cluster_gpus(address: str, ray: Path | None = None) -> float:
    """Logical GPUs the cluster at ``address`` reports now (``ray status``), 0 when it cannot be asked."""
    try:
        done = subprocess.run([str(ray or find_ray()), "status", "--address", address],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return 0.0
    found = _GPU_LINE.search(done.stdout)
    return float(found[2]) if done.returncode == 0 and found else 0.0


class LocalRay:
    """``await start()`` → ``address`` (the head's GCS, host:port) for the services' Ray executors;
    ``await stop()`` with the mesh."""

    def __init__(self, state_root: Path, nodes: int, *, logs_dir: Path, cpus_per_node: int = 1,
                 object_store_mb: int = 256, port: int = 0, startup_timeout: float = 180.0) -> None:
        self.link = state_root / "ray"
        self.logs_dir = logs_dir
        self.ray = find_ray()
        self.cpus_per_node = cpus_per_node
        self.object_store_bytes = object_store_mb * 1024 * 1024
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.nodes = [RayNode("ray-head", "head", 0, logs_dir / "ray-head.log")] + [
            RayNode(f"ray-node-{i}", "worker", 1, logs_dir / f"ray-node-{i}.log") for i in range(1, nodes + 1)
        ]
        self.temp_dir = self._temp_dir()

    @property
    def address(self) -> str:
        """The GCS address the services' ``ray.init(address=...)`` joins."""
        return f"127.0.0.1:{self.port}"

    @property
    def gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    def _temp_dir(self) -> Path:
        """``<state>/ray``, or a short folder it links to when that path is too long for Ray's sockets."""
        if self.link.is_symlink():
            target = self.link.resolve()
            if target.is_dir():
                return target
            self.link.unlink()
        if len(str(self.link)) <= _MAX_TEMP_DIR:
            self.link.mkdir(parents=True, exist_ok=True)
            return self.link
        if self.link.is_dir():
            shutil.rmtree(self.link, ignore_errors=True)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        short = Path(tempfile.mkdtemp(prefix="viarte-ray-"))
        self.link.symlink_to(short)
        return short

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._start_sync)

    async def stop(self, grace: float = 10.0) -> None:
        await asyncio.to_thread(self.stop_sync, grace)

    def _start_sync(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.startup_timeout
        for node in self.nodes:
            self._start_node(node, deadline)
        self._await_gpus(deadline)

    def _command(self, node: RayNode) -> list[str]:
        common = [
            "--block", "--node-ip-address", "127.0.0.1", "--temp-dir", str(self.temp_dir),
            "--num-cpus", str(self.cpus_per_node), "--num-gpus", str(node.gpus),
            "--object-store-memory", str(self.object_store_bytes), "--disable-usage-stats",
            "--dashboard-agent-listen-port", str(free_port()),
            # 0/0: workers bind ports the OS picks (the default range would be shared by the nodes).
            "--min-worker-port", "0", "--max-worker-port", "0",
        ]  # fmt: skip
        if node.role == "head":
            return [str(self.ray), "start", "--head", "--port", str(self.port), "--include-dashboard", "false",
                    "--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port()), *common]
        return [str(self.ray), "start", "--address", self.address, *common]

    def _start_node(self, node: RayNode, deadline: float) -> None:
        # The supervisor's environment (PATH, HOME...), as every child of the mesh gets it.
        env = dict(os.environ)
        # Actors import services.* from this checkout (the raylet hands its environment to workers).
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        offset = node.log.stat().st_size if node.log.exists() else 0
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(
                self._command(node), cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        while time.monotonic() < deadline:
            if _STARTED in node.log.read_bytes()[offset:].decode(errors="replace"):
                return
            if node.process.poll() is not None:
                raise RayError(f"{node.name} exited with {node.process.returncode}:\n{_tail(node.log)}")
            time.sleep(0.2)
        raise RayError(f"{node.name} did not start in time:\n{_tail(node.log)}")

    def _await_gpus(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if cluster_gpus(self.address, self.ray) >= self.gpus:
                return
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise RayError(f"{node.name} exited with {node.process.returncode}:\n{_tail(node.log)}")
            time.sleep(1.0)
        raise RayError(f"the Ray cluster did not show {self.gpus} GPUs in time")

    def stop_sync(self, grace: float = 10.0) -> None:
        """Workers first, then the head: each ``ray start --block`` stops its own components on
        SIGTERM; whatever is left in their sessions is killed."""
        running = [n.process for n in reversed(self.nodes) if n.process is not None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        kill_sessions([p.pid for p in running], grace=2.0)
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""

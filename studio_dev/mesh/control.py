"""Start, inspect and stop the dev mesh from any shell (``viarte up|status|down``, the demo, tests).

``start`` launches the supervisor (``python -m studio_dev.mesh supervise``) detached from the caller
and waits until it reports ``ready`` (or ``failed``) in the state file; ``stop`` signals the
supervisor recorded there and, should it be gone, the processes it recorded (each pid checked
against its command line first, so a recycled pid is never signalled).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from studio_dev.mesh.config import MeshConfig, to_environ
from studio_dev.mesh.ray import kill_sessions
from studio_dev.mesh.runner import (
    REPO_ROOT,
    MeshError,
    MeshState,
    Supervisor,
    inherited_environment,
    read_state,
    write_state,
)

__all__ = ["ProcessStatus", "is_running", "run_foreground", "start", "status", "stop"]

SUPERVISOR_MATCH = "studio_dev.mesh"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int | None, match: str) -> bool:
    """The pid runs and its command line contains ``match`` (never trust a recycled pid)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    line = _cmdline(pid)
    if not line:  # not Linux, or exited in between
        return sys.platform != "linux"
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":  # a zombie is gone for our purposes
                return False
    except (OSError, IndexError):
        pass
    return match in line


def is_running(state_dir: str | Path) -> MeshState | None:
    """The state of the mesh whose supervisor is alive in ``state_dir``, else None."""
    state = read_state(MeshConfig(state_dir=str(state_dir)).state_file)
    if state is not None and _alive(state.supervisor_pid, SUPERVISOR_MATCH):
        return state
    return None


def start(config: MeshConfig, *, on_progress: Callable[[MeshState], None] | None = None) -> MeshState:
    """Starts the mesh in the background and returns once it is ready. Idempotent: a ready mesh in
    the same state folder is returned as it is."""
    _validate(config)
    running = is_running(config.root)
    if running is not None:
        if running.state == "ready":
            return running
        raise MeshError(f"a mesh is {running.state} in {config.root} (supervisor pid {running.supervisor_pid})")
    config.state_file.unlink(missing_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    env = {**inherited_environment(), **to_environ(config, only_changed=False)}
    env["VIARTE_MESH_STATE_DIR"] = str(config.root)
    with (config.logs_dir / "mesh.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "studio_dev.mesh", "supervise"],
            cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return _await_ready(config, proc, on_progress)


def _validate(config: MeshConfig) -> None:
    """Refuses a shape the mesh cannot run before anything starts (e.g. replicas on SQLite)."""
    try:
        config.validate()
    except ValueError as exc:
        raise MeshError(str(exc)) from None


def _await_ready(
    config: MeshConfig, proc: subprocess.Popen[bytes], on_progress: Callable[[MeshState], None] | None
) -> MeshState:
    deadline = time.monotonic() + config.startup_timeout_seconds * 3 + 60
    seen = ""
    while time.monotonic() < deadline:
        state = read_state(config.state_file)
        if state is not None and state.supervisor_pid == proc.pid:
            snapshot = state.to_json()
            if on_progress is not None and snapshot != seen:
                on_progress(state)
            seen = snapshot
            if state.state == "ready":
                return state
            if state.state == "failed":
                proc.wait(timeout=config.stop_timeout_seconds * 6 + 30)
                raise MeshError(state.error or "the mesh failed to start")
        if proc.poll() is not None:
            tail = (config.logs_dir / "mesh.log").read_text(errors="replace")[-3000:]
            raise MeshError(f"the mesh supervisor exited with {proc.returncode}:\n{tail}")
        time.sleep(0.2)
    stop(config.root)
    raise MeshError("the mesh did not become ready in time")


def stop(state_dir: str | Path, *, timeout: float = 60.0) -> MeshState | None:
    """Stops the mesh recorded in ``state_dir``; returns its final state (None if there was none)."""
    path = MeshConfig(state_dir=str(state_dir)).state_file
    state = read_state(path)
    if state is None:
        return None
    if _alive(state.supervisor_pid, SUPERVISOR_MATCH):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.supervisor_pid, signal.SIGTERM)
        if not _wait_gone(state.supervisor_pid, SUPERVISOR_MATCH, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.supervisor_pid, signal.SIGKILL)
    # Whatever the supervisor could not stop (it was killed, or crashed) goes now.
    for info in state.processes:
        if info.pid and info.match and _alive(info.pid, info.match):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGTERM)
            if not _wait_gone(info.pid, info.match, 10.0):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(info.pid, signal.SIGKILL)
        if info.kind == "ray" and info.pid and not _recycled(info.pid, info.match):
            # A Ray node's components and workers (retitled ray::...) stay in its session.
            kill_sessions([info.pid])
    final = read_state(path) or state
    if final.state not in ("stopped", "failed"):
        final.state = "stopped"
    for info in final.processes:
        if info.status in ("running", "starting"):
            info.status = "stopped"
    write_state(path, final)
    return final


def _recycled(pid: int, match: str) -> bool:
    """The pid is some other program's now (a pid stays reserved while it is a live session's id,
    so a gone leader whose session lives on reads as not recycled)."""
    return Path(f"/proc/{pid}").exists() and not _alive(pid, match)


def _wait_gone(pid: int, match: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, match):
            return True
        time.sleep(0.1)
    return False


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    kind: str
    status: str  # as recorded, or "dead" when the recorded pid is gone
    healthy: bool
    pid: int | None
    address: str
    log: str
    note: str


def _healthy(address: str) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1.5)
    except grpc.RpcError:
        return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def status(state_dir: str | Path) -> tuple[MeshState | None, list[ProcessStatus]]:
    """The recorded state plus a live check of every process (pid alive, gRPC health SERVING)."""
    state = read_state(MeshConfig(state_dir=str(state_dir)).state_file)
    if state is None:
        return None, []
    supervisor_alive = _alive(state.supervisor_pid, SUPERVISOR_MATCH)
    rows: list[ProcessStatus] = []
    for info in state.processes:
        alive = supervisor_alive and _alive(info.pid, info.match) if info.pid else False
        status_text = info.status if alive or info.status in ("skipped", "stopped", "failed", "exited") else "dead"
        healthy = alive and (_healthy(info.address) if info.kind == "grpc" else True)
        rows.append(ProcessStatus(info.name, info.kind, status_text, healthy, info.pid, info.address, info.log, info.note))
    if not supervisor_alive and state.state in ("ready", "starting", "stopping"):
        state.state = "dead"
    return state, rows


def run_foreground(config: MeshConfig, *, ready: Callable[[MeshState], None] | None = None) -> None:
    """Runs the supervisor in this process until SIGTERM/Ctrl-C (``viarte up --foreground``)."""
    _validate(config)
    running = is_running(config.root)
    if running is not None:
        raise MeshError(f"a mesh is already {running.state} in {config.root}; run `viarte down` first")
    asyncio.run(Supervisor(config).run_forever(ready))

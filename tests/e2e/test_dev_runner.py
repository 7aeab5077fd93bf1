"""The dev runner from the outside: ``viarte up`` / ``status`` / ``down`` in separate processes,
skipped services, stale state after a crash, and the shared ``mesh`` fixture's health."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio_dev.mesh import MeshConfig, status, stop
from studio_dev.mesh.config import GRPC_SERVICES
from studio_dev.mesh.control import _alive
from studio_dev.mesh.runner import service_exists
from tests.fixtures.mesh import RunningMesh

pytestmark = pytest.mark.e2e


def viarte(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "viarte", "--state-dir", str(state_dir), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_session_mesh_is_healthy(mesh: RunningMesh) -> None:
    state, rows = status(mesh.state_dir)
    assert state is not None and state.state == "ready"
    grpc_rows = [r for r in rows if r.kind == "grpc" and r.status == "running"]
    assert grpc_rows and all(r.healthy for r in grpc_rows)
    assert {r.name for r in grpc_rows} == {n for n in GRPC_SERVICES if service_exists(n)}
    for row in grpc_rows:
        assert Path(row.log).exists() and '"server.started"' in Path(row.log).read_text()
    assert mesh.gateway_url.startswith("http://127.0.0.1:")


def test_up_status_down_from_separate_processes(tmp_path: Path) -> None:
    # A small mesh: auth only, no S3 or Envoy, so this test stays quick.
    small = ("--json", "up", "--free-ports", "--only", "auth", "--no-s3", "--no-gateway")
    up = viarte(tmp_path, *small)
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)
    statuses = {p["name"]: p["status"] for p in state["processes"]}
    assert statuses == {"auth": "running", "storage": "skipped", "inference": "skipped", "render": "skipped", "account": "skipped"}

    shown = viarte(tmp_path, "--json", "status")
    assert shown.returncode == 0, shown.stderr
    rows = {p["name"]: p for p in json.loads(shown.stdout)["processes"]}
    assert rows["auth"]["healthy"] is True
    auth_pid, supervisor = rows["auth"]["pid"], state["supervisor_pid"]
    # A second `up` in the same folder returns the running mesh instead of starting another.
    assert json.loads(viarte(tmp_path, *small).stdout)["supervisor_pid"] == supervisor

    down = viarte(tmp_path, "down")
    assert down.returncode == 0, down.stderr
    assert not _alive(auth_pid, "services.auth") and not _alive(supervisor, "studio_dev.mesh")
    assert viarte(tmp_path, "status").returncode == 1  # recorded, but stopped


def test_cli_finds_the_mesh_through_VIARTE_MESH_STATE_DIR(tmp_path: Path) -> None:
    """No --state-dir: up, status and down all use the mesh config's VIARTE_MESH_STATE_DIR (the CLI
    once read VIARTE_STATE_DIR and silently used ./var)."""
    state_dir, cwd = tmp_path / "mesh-state", tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIARTE_")}
    env["VIARTE_MESH_STATE_DIR"] = str(state_dir)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "viarte", "--json", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    try:
        up = cli("up", "--free-ports", "--only", "auth", "--no-s3", "--no-gateway")
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["state_dir"] == str(state_dir)
        assert (state_dir / "mesh" / "state.json").is_file() and not (cwd / "var").exists()
        shown = cli("status")
        assert shown.returncode == 0, shown.stderr
        assert {p["name"]: p["healthy"] for p in json.loads(shown.stdout)["processes"]}["auth"] is True
        down = cli("down")
        assert down.returncode == 0 and json.loads(down.stdout) == {"stopped": True}, down.stderr
    finally:  # whichever folder a broken CLI used, leave no mesh running
        for folder in (state_dir, cwd / "var"):
            stop(folder)


def test_children_die_with_a_killed_supervisor_and_down_cleans_up(tmp_path: Path) -> None:
    config = MeshConfig(state_dir=str(tmp_path), free_ports=True, services=("auth",), s3=False, gateway=False)
    from studio_dev.mesh import start

    state = start(config)
    auth = state.process("auth")
    assert auth is not None and auth.pid
    os.kill(state.supervisor_pid, signal.SIGKILL)  # a crash: no orderly shutdown
    deadline = time.monotonic() + 15
    while _alive(auth.pid, "services.auth") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(auth.pid, "services.auth")  # PR_SET_PDEATHSIG took it down
    found, _rows = status(tmp_path)
    assert found is not None and found.state == "dead"
    assert stop(tmp_path) is not None  # nothing left to kill, but the state is settled
    assert status(tmp_path)[0].state == "stopped"  # type: ignore[union-attr]


def test_failed_service_fails_the_start_with_its_log(tmp_path: Path) -> None:
    from studio_dev.mesh import MeshError, start

    # An auth config the service rejects at startup: the mesh must fail fast and stop everything.
    config = MeshConfig(
        state_dir=str(tmp_path), free_ports=True, services=("auth",), s3=False, gateway=False,
        child_env=("VIARTE_AUTH_BCRYPT_COST=not-a-number",), startup_timeout_seconds=60,
    )  # fmt: skip
    with pytest.raises(MeshError) as caught:
        start(config)
    assert "auth" in str(caught.value) and "BCRYPT_COST" in str(caught.value)
    final, _ = status(tmp_path)
    assert final is not None and final.state == "failed"


def test_keep_going_starts_the_rest_without_the_failed_service(tmp_path: Path) -> None:
    from studio_dev.mesh import start

    config = MeshConfig(
        state_dir=str(tmp_path), free_ports=True, services=("auth", "render"), s3=False, gateway=False, keep_going=True,
        child_env=("VIARTE_AUTH_BCRYPT_COST=not-a-number",), startup_timeout_seconds=60,
    )  # fmt: skip
    try:
        state = start(config)
        statuses = {p.name: p.status for p in state.processes}
        assert statuses["auth"] == "failed" and statuses["render"] == "running"
        assert "BCRYPT_COST" in state.process("auth").note  # type: ignore[union-attr]
    finally:
        stop(tmp_path)

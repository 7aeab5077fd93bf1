"""The dev runner's Ray shape (issue 15): ``viarte up --ray`` starts a local Ray head plus two worker
nodes (one logical GPU each) and runs inference with the Ray executor; a generation job through the
SDK runs on a Ray actor (placement recorded); ``viarte down`` leaves no Ray process behind.

One mesh (auth, storage, inference; no gateway) for the slow tests of the module, started through
the CLI as a user would."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio_dev.mesh import MeshConfig, MeshError, MeshState, start, status, stop
from studio_dev.mesh.ray import cluster_gpus, session_members
from viarte import AsyncClient, JobState, generation_parameters
from viarte.cli import app
from viarte.render.v1 import render_pb2

T2V = dict(model="tiny-modelscope", prompt="a lighthouse at dusk", width=64, height=64, num_frames=4, seed=5)
NODES = ("ray-head", "ray-node-1", "ray-node-2")


@dataclass
class RayMesh:
    state: MeshState
    state_dir: Path
    temp_dir: Path  # the cluster's Ray temp folder (the real one, not the state dir's link)
    pids: dict[str, int]  # Ray node name → its `ray start --block` pid (its session's id)


def _cli(state_dir: Path, *args: str) -> str:
    env = {"VIARTE_MESH_CHILD_ENV": "VIARTE_AUTH_BCRYPT_COST=4,VIARTE_LOG_LEVEL=INFO"}
    result = CliRunner().invoke(app, ["--state-dir", str(state_dir), *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def _processes_of(mesh: RayMesh) -> list[str]:
    """Every live process of the cluster: members of its nodes' sessions, or anything naming its
    temp folder (a component that left the session would still name it)."""
    found = [f"{pid} (session of {name})" for name, sid in mesh.pids.items() for pid in session_members(sid)]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(mesh.temp_dir) in line:
                found.append(f"{entry.name}: {line[:160]}")
    return found


@pytest.fixture(scope="module")
def ray_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayMesh]:
    pytest.importorskip("ray")
    state_dir = tmp_path_factory.mktemp("ray-mesh")
    try:
        output = _cli(state_dir, "up", "--ray", "--ray-nodes", "2", "--free-ports", "--no-gateway",
                      "--only", "auth", "--only", "storage", "--only", "inference",
                      "--only", "render")  # fmt: skip
        state, _ = status(state_dir)
        assert state is not None and state.state == "ready", output
        pids = {name: p.pid for name in NODES if (p := state.process(name)) is not None and p.pid}
        yield RayMesh(state, state_dir, (state_dir / "ray").resolve(), pids)
    finally:
        stop(state_dir)
        link = state_dir / "ray"
        if link.is_symlink():  # the short temp folder outside the pytest folder
            shutil.rmtree(link.resolve(), ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_up_ray_starts_a_head_and_two_gpu_nodes(ray_mesh: RayMesh) -> None:
    state, rows = status(ray_mesh.state_dir)
    assert state is not None and state.state == "ready"
    by_name = {r.name: r for r in rows}
    assert all(by_name[n].status == "running" and by_name[n].pid for n in NODES), rows
    assert state.ray_address and by_name["ray-head"].address == state.ray_address
    assert by_name["inference"].status == "running" and by_name["inference"].healthy
    # The cluster itself reports the two logical GPUs, one per worker node.
    assert cluster_gpus(state.ray_address) == 2.0
    shown = _cli(ray_mesh.state_dir, "status")
    assert all(n in shown for n in NODES) and f"ray: {state.ray_address}" in shown, shown
    log = (ray_mesh.state_dir / "logs" / "inference.log").read_text(errors="replace")
    assert "ray_ready" in log, log[-2000:]  # the server joined this cluster (its Ray executor is on)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_generation_and_upscale_jobs_run_on_ray_actors_sharing_the_gpus(ray_mesh: RayMesh) -> None:
    async with AsyncClient(dict(ray_mesh.state.endpoints)) as client:
        email, password = f"ray-{uuid.uuid4().hex[:10]}@viarte.test", "correct horse battery staple"
        await client.auth.register(email, password)
        job = await client.generation.create(generation_parameters(**T2V))  # type: ignore[arg-type]
        done = await client.generation.wait(job.id, timeout=600)
    assert JobState(done.status.state) is JobState.SUCCEEDED, done.status.error
    assert done.result.video_asset_id
    placement = done.status.placement
    assert placement.executor == "ray", placement
    assert len(placement.node) >= 16 and placement.device, placement  # a Ray node id, a logical GPU
    # Render's actors share the GPUs with inference's (half a GPU each): an upscale of that video
    # runs on the cluster too while inference's actors stay up.
    async with AsyncClient(dict(ray_mesh.state.endpoints)) as client:
        await client.auth.login(email, password)
        upscale = await client.upscale.create(
            render_pb2.UpscaleParameters(video_asset_id=done.result.video_asset_id, scale=2)
        )
        upscaled = await client.upscale.wait(upscale.id, timeout=600)
    assert JobState(upscaled.status.state) is JobState.SUCCEEDED, upscaled.status.error
    assert upscaled.status.placement.executor == "ray", upscaled.status.placement


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_down_leaves_no_ray_process(ray_mesh: RayMesh) -> None:
    assert len(ray_mesh.pids) == 3 and _processes_of(ray_mesh)  # running until now
    _cli(ray_mesh.state_dir, "down")
    assert _processes_of(ray_mesh) == []
    state, rows = status(ray_mesh.state_dir)
    assert state is not None and state.state == "stopped"
    assert {r.name: r.status for r in rows if r.kind == "ray"} == dict.fromkeys(NODES, "stopped")


# -- the config (no cluster) ---------------------------------------------------------------------
def test_ray_nodes_must_cover_the_inference_replicas(tmp_path: Path) -> None:
    config = MeshConfig(state_dir=str(tmp_path), database="postgres", replicas=3, ray=True, ray_nodes=2)
    with pytest.raises(MeshError, match="needs at least 3 Ray nodes"):
        start(config)
    assert not (tmp_path / "logs" / "ray-head.log").exists()  # refused before anything started
    # Replicas split the logical GPUs between them (each creates its share of actors).
    shares = MeshConfig(database="postgres", replicas=2, ray=True, ray_nodes=5)
    assert [shares.ray_actors(i) for i in (1, 2)] == [3, 2]
    assert [shares.ray_actors(i, "render") for i in (1, 2)] == [3, 2]


def test_ray_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.kit.config import load_config

    monkeypatch.setenv("VIARTE_MESH_RAY", "true")
    monkeypatch.setenv("VIARTE_MESH_RAY_NODES", "3")
    config = load_config(MeshConfig)
    assert config.ray and config.ray_nodes == 3
    assert MeshConfig().ray is False and MeshConfig().ray_nodes == 2

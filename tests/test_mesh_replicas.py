"""The dev runner's replica shape (issue 14): one embedded PostgreSQL, two processes of every service,
Envoy balancing over both. A mesh of its own (``--postgres --replicas 2``), started once for the module.

Which replica runs a job is made certain by freezing the other one (SIGSTOP) while the job is
created and claimed: a frozen replica claims nothing, and is thawed before the test goes on."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.grpcweb import GrpcWebClient, GrpcWebError
from studio_dev.mesh import MeshConfig, MeshError, MeshState, start, status, stop
from viarte import AsyncClient, JobState, generation_parameters
from viarte.auth.v1 import auth_pb2
from viarte.cli import app
from viarte.errors import Unavailable

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[1]
FREE_FAILURES = 3
T2V = dict(model="tiny-modelscope", prompt="a lighthouse at dusk", width=64, height=64, num_frames=4, seed=5)
SLOW_T2V = {**T2V, "num_inference_steps": 40}
_CHILD_ENV = (
    "VIARTE_AUTH_BCRYPT_COST=4",
    "VIARTE_LOG_LEVEL=INFO",
    f"VIARTE_AUTH_LOGIN_MAX_FAILURES_PER_ACCOUNT={FREE_FAILURES}",
    "VIARTE_AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS=1000",
    # Long waits: a slow machine must not see a backoff run out between two calls.
    "VIARTE_AUTH_LOGIN_BACKOFF_BASE_SECONDS=120",
    "VIARTE_AUTH_LOGIN_BACKOFF_MAX_SECONDS=240",
    # A killed replica's job is taken over soon after its lease expires (JobConfig.lease_seconds).
    "VIARTE_INFERENCE_JOB_LEASE_SECONDS=3",
)


@dataclass
class ReplicaMesh:
    state: MeshState
    state_dir: Path

    def address(self, name: str) -> str:
        info = self.state.process(name)
        assert info is not None and info.status == "running", f"{name} is not running"
        return info.address

    def endpoints(self, inference: str = "inference-1", auth: str = "auth-1") -> dict[str, str]:
        """Direct endpoints, one replica per service (the SDK's own choice of replica)."""
        return {
            "auth": self.address(auth), "storage": self.address("storage-1"),
            "inference": self.address(inference), "render": self.address("render-1"),
        }  # fmt: skip

    def log(self, name: str) -> str:
        return (self.state_dir / "logs" / f"{name}.log").read_text(errors="replace")

    def pid(self, name: str) -> int:
        info = self.state.process(name)
        assert info is not None and info.pid
        return info.pid


@pytest.fixture(scope="module")
def replica_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaMesh]:
    state_dir = tmp_path_factory.mktemp("replica-mesh")
    config = MeshConfig(state_dir=str(state_dir), free_ports=True, database="postgres", replicas=2, child_env=_CHILD_ENV)
    try:
        yield ReplicaMesh(start(config), state_dir)
    finally:
        stop(state_dir)
        link = state_dir / "postgres"
        if link.is_symlink():  # the cluster lived outside the (private) pytest folder
            shutil.rmtree(link.resolve(), ignore_errors=True)


# -- the runner ------------------------------------------------------------------------------
def test_replicas_on_sqlite_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(MeshError, match="need a shared PostgreSQL"):
        start(MeshConfig(state_dir=str(tmp_path), free_ports=True, replicas=2))
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIARTE_MESH_STATE_DIR": str(tmp_path), "VIARTE_MESH_INFERENCE_REPLICAS": "2"}
    done = subprocess.run([sys.executable, "-m", "studio_dev.mesh", "up"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "inference: 2 replicas need a shared PostgreSQL" in done.stderr and "--postgres" in done.stderr
    assert not (tmp_path / "logs" / "inference-1.log").exists()  # refused, not started and failed
    # The CLI: `viarte up --replicas 2` without --postgres.
    result = CliRunner().invoke(app, ["--state-dir", str(tmp_path), "up", "--replicas", "2", "--free-ports"])
    assert result.exit_code == 1, result.output
    assert "need a shared PostgreSQL" in result.stderr


def test_status_lists_every_replica_healthy(replica_mesh: ReplicaMesh) -> None:
    state, rows = status(replica_mesh.state_dir)
    assert state is not None and state.state == "ready"
    by_name = {r.name: r for r in rows}
    for service in ("auth", "storage", "inference", "render"):
        replicas = [by_name[f"{service}-{i}"] for i in (1, 2)]
        assert all(r.status == "running" and r.healthy for r in replicas), replicas
        assert len({r.address for r in replicas}) == 2
        assert state.replicas[service] == [r.address for r in replicas]
    assert by_name["postgres"].status == "running" and state.database == "postgres"


async def test_envoy_balances_over_both_replicas_and_throttling_is_shared(replica_mesh: ReplicaMesh) -> None:
    email, password = f"rr-{uuid.uuid4().hex[:10]}@viarte.test", "correct horse battery staple"
    before = {n: replica_mesh.log(n).count("AuthService/Login") for n in ("auth-1", "auth-2")}
    async with GrpcWebClient(replica_mesh.state.gateway_url) as web:
        await web.unary(AUTH + "Register", auth_pb2.RegisterRequest(email=email, password=password), auth_pb2.RegisterResponse)
        reasons = []
        for i in range(FREE_FAILURES + 3):
            try:
                await web.unary(AUTH + "Login", auth_pb2.LoginRequest(email=email, password=f"guess {i}"), auth_pb2.LoginResponse)
            except GrpcWebError as error:
                reasons.append(error.reason)
    # One replica alone would trip after FREE_FAILURES; per-process counters after twice that.
    assert reasons == ["INVALID_CREDENTIALS"] * FREE_FAILURES + ["TOO_MANY_ATTEMPTS"] * 3
    await asyncio.sleep(0.5)  # access lines are written after the reply
    landed = {n: replica_mesh.log(n).count("AuthService/Login") - before[n] for n in before}
    assert all(count >= 1 for count in landed.values()), f"Envoy sent every Login to one replica: {landed}"


AUTH = "/viarte.auth.v1.AuthService/"


# -- jobs across replicas (services/kit/jobs: leases, LISTEN/NOTIFY) ---------------------------------
@asynccontextmanager
async def signed_in(mesh: ReplicaMesh) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    """One user, one client per inference replica (same session)."""
    async with AsyncClient(mesh.endpoints("inference-1")) as one:
        await one.auth.register(f"jobs-{uuid.uuid4().hex[:10]}@viarte.test", "correct horse battery staple")
        async with AsyncClient(mesh.endpoints("inference-2"), tokens=one.credentials.tokens) as two:
            yield one, two


@contextmanager
def frozen(mesh: ReplicaMesh, name: str) -> Iterator[None]:
    os.kill(mesh.pid(name), signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(mesh.pid(name), signal.SIGCONT)


async def _until_running(client: AsyncClient, job_id: str) -> int:
    """The sequence of the job's first RUNNING-or-later event (the job was claimed)."""
    async for update in client.generation.watch(job_id):
        if not update.snapshot and update.state not in (JobState.QUEUED,):
            return int(update.sequence)
    raise AssertionError("the job finished before it was seen running")


async def _video_assets(client: AsyncClient) -> list[str]:
    return [a.id async for a in client.assets.list_all(kind="video")]


async def test_twenty_concurrent_creates_over_both_replicas_run_once_each(replica_mesh: ReplicaMesh) -> None:
    async with signed_in(replica_mesh) as (one, two):
        jobs = await asyncio.gather(*(
            (one if i % 2 else two).generation.create(generation_parameters(**{**T2V, "seed": i}))  # type: ignore[arg-type]
            for i in range(20)
        ))  # fmt: skip
        done = await asyncio.gather(*(one.generation.wait(j.id, timeout=400) for j in jobs))
        assert all(JobState(j.status.state) is JobState.SUCCEEDED for j in done)
        results = [j.result.video_asset_id for j in done]
        assert len(set(results)) == 20
        assert sorted(await _video_assets(one)) == sorted(results)  # no second run left an asset behind


async def test_same_request_id_to_both_replicas_is_one_job(replica_mesh: ReplicaMesh) -> None:
    async with signed_in(replica_mesh) as (one, two):
        request_id = uuid.uuid4().hex
        params = generation_parameters(**T2V)  # type: ignore[arg-type]
        a, b = await asyncio.gather(
            one.generation.create(params, request_id=request_id), two.generation.create(params, request_id=request_id)
        )
        assert a.id == b.id
        await one.generation.wait(a.id, timeout=600)
        assert len(await _video_assets(one)) == 1


async def test_cancel_on_the_replica_not_running_the_job_lands_within_a_second(replica_mesh: ReplicaMesh) -> None:
    async with signed_in(replica_mesh) as (one, two):
        with frozen(replica_mesh, "inference-2"):  # inference-1 claims the job
            job = await one.generation.create(generation_parameters(**SLOW_T2V))  # type: ignore[arg-type]
            await _until_running(one, job.id)
        await two.generation.cancel(job.id)
        sent = time.monotonic()
        while JobState((await two.generation.get(job.id)).status.state) is not JobState.CANCELLED:
            # The bound is 1 s; the extra second is polling and a loaded 2-core CI machine.
            assert time.monotonic() - sent < 2.0, "the cancel did not reach the running job within 1 s"
            await asyncio.sleep(0.05)


async def test_kill_9_mid_job_finishes_on_the_other_replica_and_the_watch_resumes(replica_mesh: ReplicaMesh) -> None:
    """Last in the module: it kills inference-1 for good."""
    async with signed_in(replica_mesh) as (one, two):
        with frozen(replica_mesh, "inference-2"):
            job = await one.generation.create(generation_parameters(**SLOW_T2V))  # type: ignore[arg-type]
            await _until_running(one, job.id)
        seen: list[int] = []
        killed = False
        try:
            async for update in one.generation.watch(job.id, resume=False):
                if not update.snapshot:
                    seen.append(update.sequence)
                if len(seen) >= 3 and not killed:
                    os.killpg(replica_mesh.pid("inference-1"), signal.SIGKILL)  # the replica and its worker
                    killed = True
        except Unavailable:
            pass  # the stream broke with its replica
        assert killed, f"the job ended before the kill: {seen}"
        final = None
        async with asyncio.timeout(300):  # lease expiry + the rest of a tiny job; a hang fails here
            async for update in two.generation.watch(job.id, after_sequence=seen[-1]):
                if not update.snapshot:
                    seen.append(update.sequence)
                final = update
        assert final is not None and final.terminal and final.job.status.state == JobState.SUCCEEDED
        assert seen == list(range(seen[0], seen[-1] + 1)), f"gap or duplicate in {seen}"
        assert await _video_assets(two) == [final.job.result.video_asset_id]

"""Services starting on PostgreSQL: N replicas migrating at once, and a database that is down at start.

Real PostgreSQL clusters (tests/fixtures/postgres.py) and, for the start-up behaviour, a real
``python -m services.auth`` process."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.auth.server import MIGRATIONS
from services.kit.db import DatabaseUnreachable, make_engine, upgrade, wait_for_database
from tests.auth.helpers import expect_failure
from tests.fixtures.postgres import PostgresCluster, free_port
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
REPLICAS = 6


def test_replicas_starting_together_migrate_once(postgres_database: Callable[[], str]) -> None:
    url = postgres_database()
    engines = [make_engine(url) for _ in range(REPLICAS)]
    start = threading.Barrier(REPLICAS)

    def migrate(i: int) -> None:
        start.wait()  # every replica reaches Alembic at the same moment
        upgrade(engines[i], MIGRATIONS)

    try:
        with ThreadPoolExecutor(REPLICAS) as pool:
            for future in [pool.submit(migrate, i) for i in range(REPLICAS)]:
                future.result()  # without the advisory lock: "relation ... already exists" here
    finally:
        for engine in engines:
            engine.dispose()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        versions = conn.execute("SELECT version_num FROM alembic_version_auth").fetchall()
    assert len(versions) == 1


def test_wait_gives_up_after_its_bound_naming_host_and_port_only() -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://viarte:hunter2-secret@127.0.0.1:{port}/nothing"
    with pytest.raises(DatabaseUnreachable) as raised:
        wait_for_database(url, wait_seconds=1.0)
    assert f"database unreachable at 127.0.0.1:{port}" in str(raised.value)
    assert "hunter2" not in str(raised.value) and "viarte:" not in str(raised.value)


async def test_a_service_whose_database_is_down_waits_unavailable_then_serves(tmp_path: Path) -> None:
    cluster = PostgresCluster()  # initdb'd, not started: the database is down when auth starts
    port = free_port()
    url = f"postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:{cluster.port}/postgres"
    env = {
        "PYTHONPATH": str(REPO),
        "VIARTE_AUTH_PORT": str(port),
        "VIARTE_AUTH_METRICS_PORT": "-1",
        "VIARTE_AUTH_DATA_DIR": str(tmp_path),
        "VIARTE_AUTH_DATABASE_URL": url,
        "VIARTE_AUTH_BCRYPT_COST": "4",
        "VIARTE_LOG_FORMAT": "console",
    }
    log = tmp_path / "auth.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.auth", cwd=str(REPO), env=env, stdout=out, stderr=out
        )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            auth = auth_pb2_grpc.AuthServiceStub(channel)
            status = await _health_when_listening(health, process)
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING
            failure = await expect_failure(auth.Login(auth_pb2.LoginRequest(email="a@b.c", password="x" * 12)))
            assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
            text = log.read_text(errors="replace")
            assert f"database unreachable at 127.0.0.1:{cluster.port}, retrying" in text
            assert "s3cret-pw" not in text

            cluster.start()  # the database comes up: the same process serves
            for _ in range(1200):
                assert process.returncode is None, log.read_text(errors="replace")
                try:
                    answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass  # between the stand-in and the real server
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"auth did not serve after PostgreSQL came up:\n{log.read_text()[-3000:]}")
            await auth.Register(auth_pb2.RegisterRequest(email="up@viarte.test", password="correct horse battery"))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        cluster.remove()


async def _health_when_listening(health: health_pb2_grpc.HealthStub, process: asyncio.subprocess.Process) -> int:
    for _ in range(1200):
        assert process.returncode is None, "auth exited while its database was down"
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            return int(answer.status)
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.1)
    raise AssertionError("auth never listened")

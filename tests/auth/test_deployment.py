"""The auth service as deployed: on PostgreSQL, and as `python -m services.auth` from env config."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.ports import free_port
from tests.auth.helpers import expect_failure
from tests.fixtures.auth import running_auth, test_auth_config
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
async def test_auth_service_on_postgresql(tmp_path: Path, postgres_database: Callable[[], str]) -> None:
    config = test_auth_config(str(tmp_path), database_url=postgres_database())
    async with running_auth(config) as auth, grpc.aio.insecure_channel(auth.address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        internal = auth_pb2_grpc.AuthInternalServiceStub(channel)
        registered = await stub.Register(
            auth_pb2.RegisterRequest(email="PG@viarte.test", password="postgres rocks")
        )
        login = await stub.Login(auth_pb2.LoginRequest(email="pg@viarte.test", password="postgres rocks"))
        metadata = (("authorization", f"Bearer {login.tokens.access_token}"),)
        assert (await stub.GetMe(auth_pb2.GetMeRequest(), metadata=metadata)).user.id == registered.user.id
        await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=login.tokens.refresh_token))
        # The response was lost: a retry within the grace rotates again, superseding the unused one.
        retried = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=login.tokens.refresh_token))
        rotated = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=retried.tokens.refresh_token))
        failure = await expect_failure(
            stub.Refresh(auth_pb2.RefreshRequest(refresh_token=login.tokens.refresh_token))
        )
        assert failure.reason == "REFRESH_TOKEN_REUSED"
        failure = await expect_failure(
            stub.Refresh(auth_pb2.RefreshRequest(refresh_token=rotated.tokens.refresh_token))
        )
        assert failure.reason == "TOKEN_REVOKED"
        fresh = (("authorization", f"Bearer {registered.tokens.access_token}"),)
        key = await stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="pg", scopes=["jobs:read"]), metadata=fresh
        )
        service = await internal.IssueServiceToken(
            auth_pb2.IssueServiceTokenRequest(service="render", secret=config.internal_secret.reveal())
        )
        verified = await internal.VerifyApiKey(
            auth_pb2.VerifyApiKeyRequest(api_key=key.secret),
            metadata=(("authorization", f"Bearer {service.access_token}"),),
        )
        assert verified.user.id == registered.user.id
    # A restart on the same database keeps users and signing keys (migrations are idempotent).
    async with running_auth(config) as auth, grpc.aio.insecure_channel(auth.address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=fresh)
        assert me.user.email == "pg@viarte.test"


@pytest.mark.postgres
async def test_database_outage_is_unavailable_not_a_crash(
    tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    import psycopg

    url = postgres_database()
    server_dsn, name = url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)
    config = test_auth_config(str(tmp_path), database_url=url)
    async with running_auth(config) as auth, grpc.aio.insecure_channel(auth.address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        registered = await stub.Register(
            auth_pb2.RegisterRequest(email="db@viarte.test", password="outage drill")
        )
        metadata = (("authorization", f"Bearer {registered.tokens.access_token}"),)
        with psycopg.connect(server_dsn + "/postgres", autocommit=True) as admin:
            # Cut the pooled connections and hide the database: every reconnect now fails.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{name}_away"')  # type: ignore[arg-type]
        try:
            for call in (
                stub.GetMe(auth_pb2.GetMeRequest(), metadata=metadata),
                stub.Login(auth_pb2.LoginRequest(email="db@viarte.test", password="outage drill")),
            ):
                failure = await expect_failure(call)
                assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
                assert failure.retry_after is not None
        finally:
            with psycopg.connect(server_dsn + "/postgres", autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}_away" RENAME TO "{name}"')  # type: ignore[arg-type]
        # Back in service without a restart.
        me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=metadata)
        assert me.user.id == registered.user.id


async def test_python_m_services_auth_runs_from_environment_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PYTHONPATH": str(REPO),
        "VIARTE_AUTH_PORT": str(port),
        "VIARTE_AUTH_METRICS_PORT": "-1",
        "VIARTE_AUTH_DATA_DIR": str(tmp_path),
        "VIARTE_AUTH_BCRYPT_COST": "4",
        "VIARTE_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.auth",
        cwd=str(REPO),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(150):
                try:
                    answer = await health.Check(
                        health_pb2.HealthCheckRequest(service="viarte.auth.v1.AuthService"), timeout=1
                    )
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("auth did not become healthy")
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            await stub.Register(
                auth_pb2.RegisterRequest(email="main@viarte.test", password="from the environment")
            )
        assert (tmp_path / "auth.db").exists()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_signing_key_rotates_on_schedule_while_old_tokens_keep_working(tmp_path: Path) -> None:
    config = test_auth_config(str(tmp_path), signing_key_rotation_seconds=1, key_check_interval_seconds=0.2)
    async with running_auth(config) as auth, grpc.aio.insecure_channel(auth.address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)

        async def active_kid() -> str:
            keys = (await stub.ListPublicKeys(auth_pb2.ListPublicKeysRequest())).keys
            (active,) = [k.kid for k in keys if not k.HasField("not_after")]
            return active

        first = await active_kid()
        registered = await stub.Register(
            auth_pb2.RegisterRequest(email="cron@viarte.test", password="scheduled keys")
        )
        for _ in range(50):
            await asyncio.sleep(0.1)
            if await active_kid() != first:
                break
        else:
            raise AssertionError("the signing key was not rotated on schedule")
        metadata = (("authorization", f"Bearer {registered.tokens.access_token}"),)
        assert (await stub.GetMe(auth_pb2.GetMeRequest(), metadata=metadata)).user.id == registered.user.id

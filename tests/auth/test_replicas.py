"""Login throttling across replicas: two `python -m services.auth` processes on one PostgreSQL trip the
backoff after the same number of failures as one process does, whichever replica gets them."""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.kit.ports import free_port
from tests.auth.helpers import expect_failure
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
FREE_FAILURES = 3


@asynccontextmanager
async def auth_process(data_dir: Path, database_url: str, secret: str) -> AsyncIterator[auth_pb2_grpc.AuthServiceStub]:
    """One auth replica as its own process, configured from the environment like in production."""
    port = free_port()
    env = {
        "PYTHONPATH": str(REPO),
        "VIARTE_AUTH_PORT": str(port),
        "VIARTE_AUTH_METRICS_PORT": "-1",
        "VIARTE_AUTH_DATA_DIR": str(data_dir),
        "VIARTE_AUTH_DATABASE_URL": database_url,
        "VIARTE_AUTH_INTERNAL_SECRET": secret,
        "VIARTE_AUTH_BCRYPT_COST": "4",
        "VIARTE_AUTH_LOGIN_MAX_FAILURES_PER_ACCOUNT": str(FREE_FAILURES),
        "VIARTE_AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000",
        # Long waits: a slow machine must not see a wait run out between two calls.
        "VIARTE_AUTH_LOGIN_BACKOFF_BASE_SECONDS": "120",
        "VIARTE_AUTH_LOGIN_BACKOFF_MAX_SECONDS": "240",
        "VIARTE_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.auth", cwd=str(REPO), env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(600):
                assert process.returncode is None, "auth replica exited during startup"
                try:
                    answer = await health.Check(
                        health_pb2.HealthCheckRequest(service="viarte.auth.v1.AuthService"), timeout=1
                    )
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("auth replica did not become healthy")
            yield auth_pb2_grpc.AuthServiceStub(channel)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def replicas(tmp_path: Path, postgres_database: Callable[[], str]) -> AsyncIterator[list[auth_pb2_grpc.AuthServiceStub]]:
    url, secret = postgres_database(), "replica-secret-" + secrets.token_urlsafe(12)
    async with AsyncExitStack() as stack:
        # One after the other: the first creates the schema and the signing key.
        yield [await stack.enter_async_context(auth_process(tmp_path / f"auth-{i}", url, secret)) for i in range(2)]


async def _register(stub: auth_pb2_grpc.AuthServiceStub) -> tuple[str, str]:
    email, password = f"rep-{uuid.uuid4().hex[:8]}@viarte.test", "correct horse battery"
    await stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
    return email, password


async def _login_outcomes(stubs: list[auth_pb2_grpc.AuthServiceStub], email: str, attempts: int) -> list[str]:
    reasons = []
    for i in range(attempts):
        stub = stubs[i % len(stubs)]
        failure = await expect_failure(stub.Login(auth_pb2.LoginRequest(email=email, password=f"guess {i}")))
        reasons.append(failure.reason)
    return reasons


async def test_failures_spread_over_two_replicas_trip_like_on_one(replicas: list[auth_pb2_grpc.AuthServiceStub]) -> None:
    a, b = replicas
    expected = ["INVALID_CREDENTIALS"] * FREE_FAILURES + ["TOO_MANY_ATTEMPTS"] * 2
    one_email, _ = await _register(a)
    assert await _login_outcomes([a], one_email, FREE_FAILURES + 2) == expected
    email, password = await _register(b)
    assert await _login_outcomes([a, b], email, FREE_FAILURES + 2) == expected
    # The guesser waits on both replicas, even with the right password.
    for stub in (a, b):
        failure = await expect_failure(stub.Login(auth_pb2.LoginRequest(email=email, password=password)))
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_ATTEMPTS")
        assert failure.retry_after is not None and failure.retry_after > 0


async def test_a_concurrent_burst_over_two_replicas_gets_the_free_failures_once(
    replicas: list[auth_pb2_grpc.AuthServiceStub],
) -> None:
    email, _ = await _register(replicas[0])
    calls = [
        expect_failure(replicas[i % 2].Login(auth_pb2.LoginRequest(email=email, password=f"burst {i}")))
        for i in range(12)
    ]
    reasons = [f.reason for f in await asyncio.gather(*calls)]
    assert reasons.count("INVALID_CREDENTIALS") <= FREE_FAILURES, reasons
    assert reasons.count("TOO_MANY_ATTEMPTS") >= 12 - FREE_FAILURES, reasons

"""Lockouts are no weapon (issue 21 §4): through the dev mesh's real Envoy, failed logins from one
client address slow that address down without blocking the owner's login from another, and auth
trusts x-forwarded-for only from Envoy (a spoofed header sent straight to auth is ignored).

Several clients on one machine: each connects from its own loopback address (127.0.0.x)."""

from __future__ import annotations

import uuid

import grpc

from gateway.grpcweb import GrpcWebClient, GrpcWebError
from services.kit.config import Secret
from tests.auth.helpers import expect_failure
from tests.fixtures.auth import running_auth, test_auth_config
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

AUTH = "/viarte.auth.v1.AuthService/"


async def _login(client: GrpcWebClient, email: str, password: str) -> GrpcWebError | None:
    try:
        await client.unary(AUTH + "Login", auth_pb2.LoginRequest(email=email, password=password), auth_pb2.LoginResponse)
    except GrpcWebError as error:
        return error
    return None


async def test_guesses_from_one_address_do_not_lock_the_owner_out(mesh) -> None:
    mesh.require("auth", "gateway")
    email, password = f"owner-{uuid.uuid4().hex[:10]}@viarte.test", "correct horse battery staple"
    async with GrpcWebClient(mesh.gateway_url, local_address="127.0.0.4") as owner:
        await owner.unary(
            AUTH + "Register", auth_pb2.RegisterRequest(email=email, password=password), auth_pb2.RegisterResponse
        )
        async with GrpcWebClient(mesh.gateway_url, local_address="127.0.0.3") as attacker:
            errors = [await _login(attacker, email, f"guess number {i}") for i in range(8)]
            # Even the right password waits now, from the attacker's address (the control: the
            # throttle works through Envoy, so the owner's success below is not for want of one).
            waiting = await _login(attacker, email, password)
        codes = [e.code if e else grpc.StatusCode.OK for e in errors]
        assert codes[:5] == [grpc.StatusCode.UNAUTHENTICATED] * 5, codes
        assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED, codes
        assert waiting is not None and waiting.reason == "TOO_MANY_ATTEMPTS", waiting
        assert waiting.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await _login(owner, email, password) is None  # the owner is not locked out


async def test_a_spoofed_forwarded_for_straight_to_auth_is_ignored(tmp_path) -> None:
    """The dev mesh's setup: only Envoy's source address (127.0.0.2) is trusted. A caller on
    127.0.0.1 rotating x-forwarded-for still spends one address budget."""
    config = test_auth_config(
        str(tmp_path), trusted_proxies=("127.0.0.2",), login_max_failures_per_address=4,
        internal_secret=Secret("the-mesh-internal-secret-0123456789"),
    )  # fmt: skip
    async with running_auth(config) as auth, grpc.aio.insecure_channel(auth.address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        reasons = []
        for i in range(6):
            failure = await expect_failure(
                stub.Login(
                    auth_pb2.LoginRequest(email=f"spray{i}@viarte.test", password="Summer2026!"),
                    metadata=(("x-forwarded-for", f"198.51.100.{i}"),),
                )
            )
            reasons.append(failure.reason)
        assert reasons[:4] == ["INVALID_CREDENTIALS"] * 4
        assert reasons[4:] == ["TOO_MANY_ATTEMPTS"] * 2

        # Wrong service secrets: throttled by the caller's (real) address, with RetryInfo; the key
        # never names the service (tests/auth/test_units.py checks the keys).
        internal = auth_pb2_grpc.AuthInternalServiceStub(channel)
        for _ in range(config.service_secret_max_failures):
            failure = await expect_failure(
                internal.IssueServiceToken(auth_pb2.IssueServiceTokenRequest(service="render", secret="guess"))
            )
            assert failure.reason == "INVALID_CREDENTIALS"
        failure = await expect_failure(
            internal.IssueServiceToken(auth_pb2.IssueServiceTokenRequest(service="render", secret="guess"))
        )
        assert failure.reason == "TOO_MANY_ATTEMPTS" and failure.retry_after

"""The security list of issue 3, each over a real loopback server, each with a positive control so
that it fails on a broken implementation (a check that accepts everything fails the control's twin,
a check that refuses everything fails the control)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import bcrypt
import grpc
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.auth import passwords, servicer
from services.kit.auth import Authenticator, RemoteKeySource, current_principal
from services.kit.config import ServiceConfig
from services.kit.db import run_db
from services.kit.server import Service, build_server, stop
from tests.auth.helpers import expect_failure
from tests.fixtures.auth import running_auth, test_auth_config
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.storage.v1 import storage_pb2, storage_pb2_grpc


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Forge:
    """Builds tokens like the auth service does, with chosen flaws."""

    server: grpc.aio.Server
    base_claims: dict[str, Any]

    @property
    def kid(self) -> str:
        return str(self.server.auth_keys.active.kid)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {**self.base_claims, "iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def signed(
        self, *, private_key: Ed25519PrivateKey | None = None, kid: str | None = None, **overrides: Any
    ) -> str:
        key = private_key or self.server.auth_keys.active.private_key
        return jwt.encode(self.claims(**overrides), key, algorithm="EdDSA", headers={"kid": kid or self.kid})


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stub(auth_service) -> AsyncIterator[auth_pb2_grpc.AuthServiceStub]:
    async with grpc.aio.insecure_channel(auth_service.address) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


@pytest_asyncio.fixture(loop_scope="session")
async def victim(user_factory):
    return await user_factory()


@pytest.fixture
def forge(auth_service, victim) -> Forge:
    claims = jwt.decode(victim.access_token, options={"verify_signature": False})
    return Forge(auth_service.server, claims)


async def assert_refused(stub, token: str, reason: str = "TOKEN_INVALID") -> None:
    failure = await expect_failure(stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(token)))
    assert (failure.code, failure.reason, failure.domain) == (
        grpc.StatusCode.UNAUTHENTICATED,
        reason,
        "viarte.auth",
    )


async def test_control_a_correctly_forged_token_is_accepted(stub, forge, victim) -> None:
    me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(forge.signed()))
    assert me.user.id == victim.id


async def test_alg_none_is_refused(stub, forge) -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{_segment({'alg': alg, 'typ': 'JWT', 'kid': forge.kid})}.{_segment(forge.claims())}."
        await assert_refused(stub, token)


async def test_hs256_signed_with_the_public_key_is_refused(stub, forge) -> None:
    """Algorithm confusion: an HMAC "signature" keyed with the public key in every common encoding."""
    public = forge.server.auth_keys.active.private_key.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    for secret in (raw, pem, _b64(raw).encode()):
        for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
            signing_input = (
                f"{_segment({'alg': alg, 'typ': 'JWT', 'kid': forge.kid})}.{_segment(forge.claims())}"
            )
            signature = hmac.new(secret, signing_input.encode(), digest).digest()
            await assert_refused(stub, f"{signing_input}.{_b64(signature)}")


async def test_expired_token_is_refused(stub, forge) -> None:
    now = int(time.time())
    await assert_refused(stub, forge.signed(iat=now - 900, nbf=now - 900, exp=now - 60), "TOKEN_EXPIRED")


async def test_not_yet_valid_token_is_refused(stub, forge) -> None:
    now = int(time.time())
    await assert_refused(stub, forge.signed(nbf=now + 120, exp=now + 600))
    await assert_refused(stub, forge.signed(iat=now + 120, nbf=now + 120, exp=now + 600))


async def test_wrong_audience_or_issuer_is_refused(stub, forge) -> None:
    await assert_refused(stub, forge.signed(aud="someone-else"))
    await assert_refused(stub, forge.signed(iss="https://evil.example"))
    await assert_refused(stub, forge.signed(aud=None))
    await assert_refused(stub, forge.signed(exp=None))


async def test_unknown_kid_is_refused(stub, forge) -> None:
    attacker = Ed25519PrivateKey.generate()
    await assert_refused(stub, forge.signed(private_key=attacker, kid="attacker-key"))
    # A known kid does not make a foreign signature valid.
    await assert_refused(stub, forge.signed(private_key=attacker))
    await assert_refused(stub, forge.signed(kid="no-such-kid"))


async def test_tampered_payload_is_refused(stub, forge, victim, user_factory) -> None:
    other = await user_factory()
    header, payload, signature = victim.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    for change in ({"role": "admin"}, {"sub": other.id}, {"exp": claims["exp"] + 86_400}):
        await assert_refused(stub, f"{header}.{_segment({**claims, **change})}.{signature}")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    await assert_refused(stub, f"{header}.{payload}.{flipped}")
    # Only an access token is accepted as one.
    await assert_refused(stub, forge.signed(typ="refresh"))


async def test_revoked_session_is_refused(stub, victim) -> None:
    await stub.Logout(auth_pb2.LogoutRequest(), metadata=victim.metadata)
    await assert_refused(stub, victim.access_token, "TOKEN_REVOKED")
    failure = await expect_failure(
        stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="x", scopes=["jobs:read"]), metadata=victim.metadata
        )
    )
    assert failure.reason == "TOKEN_REVOKED"


async def test_refresh_token_reuse_revokes_the_whole_family(stub, victim) -> None:
    stolen = victim.refresh_token
    legit = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=stolen))
    # The legitimate client moved on (its successor was used): the stolen token is reuse, grace or not.
    moved_on = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=legit.tokens.refresh_token))
    failure = await expect_failure(stub.Refresh(auth_pb2.RefreshRequest(refresh_token=stolen)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    failure = await expect_failure(
        stub.Refresh(auth_pb2.RefreshRequest(refresh_token=moved_on.tokens.refresh_token))
    )
    assert failure.reason == "TOKEN_REVOKED"
    await assert_refused(stub, moved_on.tokens.access_token, "TOKEN_REVOKED")
    await assert_refused(stub, victim.access_token, "TOKEN_REVOKED")


async def test_a_lost_refresh_response_can_be_retried_once_the_unused_successor_then_is_reuse(
    stub, user_factory
) -> None:
    # A page reload aborts Refresh after the server rotated: the client still holds the spent token.
    user = await user_factory()
    lost = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=user.refresh_token))
    retried = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=user.refresh_token))
    assert retried.tokens.refresh_token != lost.tokens.refresh_token
    assert (await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(retried.tokens.access_token))).user.id == user.id
    # The session goes on from the retry's tokens.
    later = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=retried.tokens.refresh_token))
    # The lost successor was superseded: whoever presents it now (a thief who saw the response) is reuse.
    failure = await expect_failure(stub.Refresh(auth_pb2.RefreshRequest(refresh_token=lost.tokens.refresh_token)))
    assert failure.reason == "REFRESH_TOKEN_REUSED"
    await assert_refused(stub, later.tokens.access_token, "TOKEN_REVOKED")


async def test_a_thief_retrying_within_the_grace_loses_the_family_when_the_owner_refreshes(stub, user_factory) -> None:
    user = await user_factory()
    owner = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=user.refresh_token))
    thief = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=user.refresh_token))
    failure = await expect_failure(stub.Refresh(auth_pb2.RefreshRequest(refresh_token=owner.tokens.refresh_token)))
    assert failure.reason == "REFRESH_TOKEN_REUSED"
    failure = await expect_failure(stub.Refresh(auth_pb2.RefreshRequest(refresh_token=thief.tokens.refresh_token)))
    assert failure.reason == "TOKEN_REVOKED"
    # And the spent token gets no second grace.
    failure = await expect_failure(stub.Refresh(auth_pb2.RefreshRequest(refresh_token=user.refresh_token)))
    assert failure.reason == "TOKEN_REVOKED"


# -- brute force ------------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def strict_auth(tmp_path_factory):
    config = test_auth_config(
        str(tmp_path_factory.mktemp("auth-strict")),
        login_max_failures_per_account=3,
        login_max_failures_per_address=6,
        login_backoff_base_seconds=30,
        login_backoff_max_seconds=60,
        trusted_proxies=("127.0.0.1",),
    )
    async with running_auth(config) as service, grpc.aio.insecure_channel(service.address) as channel:
        yield auth_pb2_grpc.AuthServiceStub(channel)


def _from(address: str) -> tuple[tuple[str, str], ...]:
    return (("x-forwarded-for", f"203.0.113.77, {address}"),)


async def _register(stub) -> tuple[str, str]:
    email, password = f"bf-{uuid.uuid4().hex[:8]}@viarte.test", "correct horse battery"
    await stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
    return email, password


async def test_guessing_slows_the_guesser_not_the_owner(strict_auth) -> None:
    email, password = await _register(strict_auth)
    for i in range(3):
        failure = await expect_failure(
            strict_auth.Login(auth_pb2.LoginRequest(email=email, password=f"guess {i}"), metadata=_from("10.1.0.1"))
        )
        assert failure.reason == "INVALID_CREDENTIALS"
    # The guesser now waits (told how long), even with the right password...
    failure = await expect_failure(
        strict_auth.Login(auth_pb2.LoginRequest(email=email, password=password), metadata=_from("10.1.0.1"))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_ATTEMPTS")
    assert failure.retry_after is not None and 0 < failure.retry_after <= 60
    # ...but the owner, from another address, is not locked out (no lockout as a weapon).
    await strict_auth.Login(auth_pb2.LoginRequest(email=email, password=password), metadata=_from("10.1.0.9"))


async def test_a_burst_of_concurrent_guesses_gets_no_more_than_the_limit(strict_auth) -> None:
    email, _ = await _register(strict_auth)
    calls = [
        expect_failure(
            strict_auth.Login(
                auth_pb2.LoginRequest(email=email, password=f"burst {i}"), metadata=_from("10.5.0.1")
            )
        )
        for i in range(12)
    ]
    reasons = [f.reason for f in await asyncio.gather(*calls)]
    # All from one address: the (account, address) key admits 3 guesses, concurrent or not.
    assert reasons.count("INVALID_CREDENTIALS") <= 3, reasons
    assert reasons.count("TOO_MANY_ATTEMPTS") >= 9, reasons


async def test_brute_force_locks_the_client_address(strict_auth) -> None:
    email, password = await _register(strict_auth)
    for i in range(6):  # password spraying: one guess per (unknown) account, all from one address
        await expect_failure(
            strict_auth.Login(
                auth_pb2.LoginRequest(
                    email=f"spray{i}-{uuid.uuid4().hex[:6]}@viarte.test", password="Summer2026!"
                ),
                metadata=_from("10.2.0.1"),
            )
        )
    failure = await expect_failure(
        strict_auth.Login(auth_pb2.LoginRequest(email=email, password=password), metadata=_from("10.2.0.1"))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_ATTEMPTS")
    assert failure.retry_after is not None and failure.retry_after > 0
    await strict_auth.Login(auth_pb2.LoginRequest(email=email, password=password), metadata=_from("10.2.0.2"))


async def test_probing_register_for_taken_emails_locks_the_address_not_the_account(strict_auth) -> None:
    email, password = await _register(strict_auth)
    for _ in range(6):
        failure = await expect_failure(
            strict_auth.Register(
                auth_pb2.RegisterRequest(email=email, password="probe probe"), metadata=_from("10.4.0.1")
            )
        )
        assert failure.reason == "EMAIL_TAKEN"
    failure = await expect_failure(
        strict_auth.Register(
            auth_pb2.RegisterRequest(email=email, password="probe probe"), metadata=_from("10.4.0.1")
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_ATTEMPTS")
    # The owner of the probed account is not locked out.
    await strict_auth.Login(auth_pb2.LoginRequest(email=email, password=password), metadata=_from("10.4.0.2"))


async def test_lockout_does_not_reveal_whether_an_account_exists(strict_auth) -> None:
    known, _ = await _register(strict_auth)
    unknown = f"ghost-{uuid.uuid4().hex[:8]}@viarte.test"
    outcomes = []
    for email in (known, unknown):
        seen = []
        for _ in range(4):
            failure = await expect_failure(
                strict_auth.Login(
                    auth_pb2.LoginRequest(email=email, password="nope nope"), metadata=_from(f"10.3.{len(outcomes)}.1")
                )
            )
            seen.append((failure.code, failure.reason, failure.message))
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][-1][1] == "TOO_MANY_ATTEMPTS"


# -- API keys and scopes through another service ----------------------------------------------
@dataclass(frozen=True)
class ProbeConfig(ServiceConfig):
    service_name = "probe"


class ScopedProbe(storage_pb2_grpc.StorageServiceServicer):
    """A downstream service whose GetAsset needs `assets:read` (the kit's scope table, as storage's)."""

    async def GetAsset(self, request: storage_pb2.GetAssetRequest, context: grpc.aio.ServicerContext) -> Any:
        principal = current_principal()
        return storage_pb2.GetAssetResponse(asset={"id": principal.subject})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def probe(auth_service):
    """A kit server in front of ScopedProbe that verifies credentials against the auth service."""
    config = ProbeConfig(
        port=0, auth_address=auth_service.address, internal_secret=auth_service.config.internal_secret
    )
    channel = grpc.aio.insecure_channel(auth_service.address)
    authenticator = Authenticator(
        config, key_source=RemoteKeySource(channel, min_refetch_seconds=0), channel=channel
    )
    server, port = await build_server(config, [Service(ScopedProbe())], authenticator=authenticator)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as client:
        yield storage_pb2_grpc.StorageServiceStub(client)
    await stop(server, grace=0.2)


async def test_api_key_with_a_missing_scope_is_refused(stub, probe, user_factory) -> None:
    user = await user_factory()
    narrow = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="jobs only", scopes=["jobs:read"]), metadata=user.metadata
    )
    wide = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="assets", scopes=["assets:read"]), metadata=user.metadata
    )
    failure = await expect_failure(
        probe.GetAsset(storage_pb2.GetAssetRequest(asset_id="a"), metadata=(("x-api-key", narrow.secret),))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")
    assert failure.metadata == {"scope": "assets:read"}
    ok = await probe.GetAsset(
        storage_pb2.GetAssetRequest(asset_id="a"), metadata=(("x-api-key", wide.secret),)
    )
    assert ok.asset.id == user.id
    ok = await probe.GetAsset(storage_pb2.GetAssetRequest(asset_id="a"), metadata=user.metadata)
    assert ok.asset.id == user.id
    failure = await expect_failure(
        probe.GetAsset(storage_pb2.GetAssetRequest(asset_id="a"), metadata=(("x-api-key", "vk_" + "x" * 43),))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


# -- key rotation without downtime ------------------------------------------------------------
async def test_key_rotation_without_downtime(tmp_path) -> None:
    config = test_auth_config(str(tmp_path))
    async with running_auth(config) as auth, grpc.aio.insecure_channel(auth.address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        probe_config = ProbeConfig(port=0, auth_address=auth.address, internal_secret=config.internal_secret)
        verifier = Authenticator(
            probe_config, key_source=RemoteKeySource(channel, min_refetch_seconds=0), channel=channel
        )
        registered = await stub.Register(
            auth_pb2.RegisterRequest(email="rot@viarte.test", password="rotate me please")
        )
        old_token = registered.tokens.access_token
        old_kid = jwt.get_unverified_header(old_token)["kid"]
        assert (await verifier.verify_access_token(old_token)).subject == registered.user.id

        await run_db(auth.server.auth_keys.rotate)
        fresh = await stub.Login(auth_pb2.LoginRequest(email="rot@viarte.test", password="rotate me please"))
        new_kid = jwt.get_unverified_header(fresh.tokens.access_token)["kid"]
        assert new_kid != old_kid
        listed = {k.kid: k for k in (await stub.ListPublicKeys(auth_pb2.ListPublicKeysRequest())).keys}
        assert set(listed) == {old_kid, new_kid}
        assert listed[old_kid].HasField("not_after") and not listed[new_kid].HasField("not_after")
        assert listed[old_kid].not_after.seconds >= time.time() + config.access_token_ttl_seconds - 5
        # Both generations verify, at auth and at a remote verifier that learns the new kid on sight.
        for token in (old_token, fresh.tokens.access_token):
            assert (
                await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(token))
            ).user.id == registered.user.id
            assert (await verifier.verify_access_token(token)).subject == registered.user.id

        # Past not_after the retired key verifies nothing.
        from sqlalchemy import update

        from services.auth.models import SigningKeyRecord, utcnow

        with auth.server.auth_keys.engine.begin() as conn:
            conn.execute(
                update(SigningKeyRecord).where(SigningKeyRecord.kid == old_kid).values(not_after=utcnow())  # type: ignore[arg-type]
            )
        auth.server.auth_keys.reload()
        await assert_refused(stub, old_token)
        await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(fresh.tokens.access_token))


async def test_wrong_service_secrets_cannot_lock_the_services_out(tmp_path) -> None:
    """Issue 21: anonymous callers sharing the services' address (everything on one loopback host)
    trip the service-secret throttle; the real services, same address, still get their tokens."""
    config = test_auth_config(str(tmp_path), service_secret_max_failures=2, login_backoff_base_seconds=60)
    async with running_auth(config) as auth, grpc.aio.insecure_channel(auth.address) as channel:
        internal = auth_pb2_grpc.AuthInternalServiceStub(channel)
        wrong = auth_pb2.IssueServiceTokenRequest(service="render", secret="guess")
        reasons = [(await expect_failure(internal.IssueServiceToken(wrong))).reason for _ in range(4)]
        assert reasons == ["INVALID_CREDENTIALS"] * 2 + ["TOO_MANY_ATTEMPTS"] * 2, reasons
        right = auth_pb2.IssueServiceTokenRequest(service="render", secret=config.internal_secret.reveal())
        for _ in range(2):  # a correct secret passes the tripped throttle and does not reset it
            token = (await internal.IssueServiceToken(right)).access_token
            assert jwt.decode(token, options={"verify_signature": False})["sub"] == "service:render"
        failure = await expect_failure(internal.IssueServiceToken(wrong))
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_ATTEMPTS")
        assert failure.retry_after


# -- timing and enumeration -------------------------------------------------------------------
def test_secret_comparisons_are_constant_time() -> None:
    issue = inspect.getsource(servicer.AuthInternalServicer.IssueServiceToken)
    assert "hmac.compare_digest(" in issue and "secret ==" not in issue and "== expected" not in issue
    verify = inspect.getsource(passwords.PasswordHasher.verify)
    assert "bcrypt.checkpw(" in verify and "==" not in verify


async def test_unknown_email_costs_one_bcrypt_check_like_a_wrong_password(stub, victim, monkeypatch) -> None:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(passwords.bcrypt, "checkpw", counting)
    await expect_failure(stub.Login(auth_pb2.LoginRequest(email=victim.email, password="wrong password")))
    await expect_failure(
        stub.Login(auth_pb2.LoginRequest(email="nobody-" + victim.email, password="wrong password"))
    )
    assert len(calls) == 2
    # The dummy hash has the configured cost, so it takes as long as a real one.
    assert calls[0].split(b"$")[2] == calls[1].split(b"$")[2]


async def test_no_user_enumeration_in_login_errors(stub, victim) -> None:
    wrong_password = await expect_failure(
        stub.Login(auth_pb2.LoginRequest(email=victim.email, password="definitely wrong"))
    )
    unknown_email = await expect_failure(
        stub.Login(auth_pb2.LoginRequest(email="x" + victim.email, password="definitely wrong"))
    )
    invalid_email = await expect_failure(
        stub.Login(auth_pb2.LoginRequest(email="not an email", password="x"))
    )
    assert wrong_password == unknown_email == invalid_email
    assert (wrong_password.code, wrong_password.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "INVALID_CREDENTIALS",
    )
    assert victim.email not in wrong_password.message and "exist" not in wrong_password.message.lower()

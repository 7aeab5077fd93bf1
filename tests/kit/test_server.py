"""The service kit over a real loopback server: health, reflection, auth policy, rich errors."""

from __future__ import annotations

import socket
import sys

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy import exc as sa_exc

from services.kit.auth import Authenticator, Principal, PrincipalKind, current_principal
from services.kit.config import ServiceConfig
from services.kit.errors import ServiceError, Violations
from services.kit.server import PortInUseError, Service, build_server, stop
from services.kit.tokens import SigningKey, VerificationKey, issue_token
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

CONFIG = ServiceConfig(port=0, jwt_issuer="test-issuer", jwt_audience="test-aud")


class StaticKeys:
    def __init__(self, *keys: VerificationKey) -> None:
        self.keys = {k.kid: k for k in keys}

    async def get(self, kid: str) -> VerificationKey | None:
        return self.keys.get(kid)


async def _no_api_keys(api_key: str) -> Principal:
    if api_key == "good-key":
        return Principal("user-k", PrincipalKind.API_KEY, scopes=frozenset({"jobs:read"}), credential=("x-api-key", api_key))
    raise ServiceError.unauthenticated("TOKEN_INVALID", "invalid API key")


class Echo(auth_pb2_grpc.AuthServiceServicer):
    """A toy AuthService: GetMe echoes the principal, Register raises rich errors."""

    async def GetMe(self, request, context):
        p = current_principal()
        return auth_pb2.GetMeResponse(user=auth_pb2.User(id=p.subject), scopes=sorted(p.scopes))

    async def Register(self, request, context):
        v = Violations()
        v.check("@" in request.email, "email", "must contain @")
        v.check(len(request.password) >= 8, "password", "at least 8 characters")
        v.raise_if_any("WEAK_PASSWORD")
        raise ServiceError.resource_exhausted("TOO_MANY_ATTEMPTS", "slow down", retry_after=2.5)

    async def Login(self, request, context):
        raise RuntimeError("secret internal detail")

    async def Refresh(self, request, context):
        # What SQLAlchemy raises when PostgreSQL ended a session left idle in a transaction.
        orig = psycopg.errors.IdleInTransactionSessionTimeout("terminating connection due to idle-in-transaction timeout")
        raise sa_exc.InternalError("SELECT 1", {}, orig)

    async def Logout(self, request, context):
        raise sa_exc.DBAPIError("SELECT 1", {}, Exception("secret dsn"), connection_invalidated=True)

    async def ListPublicKeys(self, request, context):
        return auth_pb2.ListPublicKeysResponse(max_age_seconds=1)


class Internal(auth_pb2_grpc.AuthInternalServiceServicer):
    async def VerifyApiKey(self, request, context):
        return auth_pb2.VerifyApiKeyResponse(api_key_id="k")


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
async def server(signing_key):
    authenticator = Authenticator(
        CONFIG, key_source=StaticKeys(signing_key.verification_key()), api_key_resolver=_no_api_keys
    )
    server, port = await build_server(
        CONFIG,
        [Service(Echo(), anonymous=frozenset({"Register", "Login", "ListPublicKeys", "Refresh", "Logout"})), Service(Internal(), internal=True)],
        authenticator=authenticator,
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield port, channel
    await channel.close()
    await stop(server, 0)


def token(key: SigningKey, role: str = "user", **kw) -> str:
    return issue_token(
        key, subject=kw.pop("sub", "user-1"), issuer="test-issuer", audience="test-aud", ttl_seconds=60,
        claims={"typ": "access", "role": role, **kw},
    )


async def test_health_reports_every_service(server):
    _, channel = server
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", "viarte.auth.v1.AuthService", "viarte.auth.v1.AuthInternalService"):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(health_pb2.HealthCheckRequest(service="viarte.nope.v1.Nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_services(server):
    _, channel = server
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = [r async for r in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert {"viarte.auth.v1.AuthService", "viarte.auth.v1.AuthInternalService", "grpc.health.v1.Health"} <= names


async def test_anonymous_call_to_protected_method_is_unauthenticated(server):
    _, channel = server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth_pb2_grpc.AuthServiceStub(channel).GetMe(auth_pb2.GetMeRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _info(err.value).reason == "UNAUTHENTICATED"


async def test_valid_token_reaches_the_handler(server, signing_key):
    _, channel = server
    md = (("authorization", f"Bearer {token(signing_key, sub='alice')}"),)
    answer = await auth_pb2_grpc.AuthServiceStub(channel).GetMe(auth_pb2.GetMeRequest(), metadata=md)
    assert answer.user.id == "alice"


async def test_token_from_unknown_key_is_refused(server):
    _, channel = server
    md = (("authorization", f"Bearer {token(SigningKey.generate())}"),)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth_pb2_grpc.AuthServiceStub(channel).GetMe(auth_pb2.GetMeRequest(), metadata=md)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _info(err.value).domain == "viarte.auth"


async def test_api_key_principal_carries_its_scopes(server):
    _, channel = server
    answer = await auth_pb2_grpc.AuthServiceStub(channel).GetMe(auth_pb2.GetMeRequest(), metadata=(("x-api-key", "good-key"),))
    assert answer.user.id == "user-k" and list(answer.scopes) == ["jobs:read"]


async def test_internal_service_requires_a_service_principal(server, signing_key):
    _, channel = server
    stub = auth_pb2_grpc.AuthInternalServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.VerifyApiKey(auth_pb2.VerifyApiKeyRequest(), metadata=(("authorization", f"Bearer {token(signing_key)}"),))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    answer = await stub.VerifyApiKey(
        auth_pb2.VerifyApiKeyRequest(), metadata=(("authorization", f"Bearer {token(signing_key, role='service')}"),)
    )
    assert answer.api_key_id == "k"


async def test_violations_become_bad_request_details(server):
    _, channel = server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth_pb2_grpc.AuthServiceStub(channel).Register(auth_pb2.RegisterRequest(email="x", password="short"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = _info(err.value)
    assert (info.reason, info.domain) == ("WEAK_PASSWORD", "viarte.service")
    fields = {v.field for v in _detail(err.value, error_details_pb2.BadRequest).field_violations}
    assert fields == {"email", "password"}


async def test_retry_info_travels_with_resource_exhausted(server):
    _, channel = server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth_pb2_grpc.AuthServiceStub(channel).Register(auth_pb2.RegisterRequest(email="a@b.c", password="long enough"))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = _detail(err.value, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToMilliseconds() == 2500


async def test_unexpected_exception_is_internal_without_leaking(server):
    _, channel = server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth_pb2_grpc.AuthServiceStub(channel).Login(auth_pb2.LoginRequest())
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (err.value.details() or "")
    assert _info(err.value).reason == "INTERNAL"


async def test_a_database_that_ended_the_session_is_unavailable_not_internal(server):
    _, channel = server
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    for call, request in ((stub.Refresh, auth_pb2.RefreshRequest()), (stub.Logout, auth_pb2.LogoutRequest())):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _info(err.value).reason == "DATABASE_UNAVAILABLE"
        assert "secret" not in (err.value.details() or "")
        assert _detail(err.value, error_details_pb2.RetryInfo).retry_delay.seconds == 1


async def test_second_server_on_a_taken_port_fails(server):
    port, _ = server
    with pytest.raises(PortInUseError):
        await build_server(ServiceConfig(port=port), [Service(Echo())], authenticator=Authenticator(
            CONFIG, key_source=StaticKeys(), api_key_resolver=_no_api_keys))
    # and the original server still answers
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def _detail(err: grpc.aio.AioRpcError, kind):
    status = rpc_status.from_call(err)
    assert status is not None
    for any_ in status.details:
        if any_.Is(kind.DESCRIPTOR):
            out = kind()
            any_.Unpack(out)
            return out
    raise AssertionError(f"no {kind.DESCRIPTOR.name} detail")


def _info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    return _detail(err, error_details_pb2.ErrorInfo)


async def test_probe_entry_point_reports_serving_and_down(server):
    import asyncio

    port, _ = server
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.kit.probe", f"127.0.0.1:{port}", "--service", "viarte.auth.v1.AuthService",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and out.strip() == b"SERVING"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.kit.probe", f"127.0.0.1:{free}", "--timeout", "1", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 1 and out.strip() == b"NOT_SERVING"


async def test_metrics_endpoint_counts_rpcs_by_code(server, signing_key):
    import httpx

    from services.kit.metrics import start_metrics_server

    _, channel = server
    metrics_port = start_metrics_server(0)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    md = (("authorization", f"Bearer {token(signing_key)}"),)
    await stub.GetMe(auth_pb2.GetMeRequest(), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetMe(auth_pb2.GetMeRequest())
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    method = "/viarte.auth.v1.AuthService/GetMe"
    ok = _sample(text, "viarte_rpc_total", method, 'code="OK"')
    denied = _sample(text, "viarte_rpc_total", method, 'code="UNAUTHENTICATED"')
    assert ok >= 1 and denied >= 1
    assert _sample(text, "viarte_rpc_duration_seconds_count", method) >= 2
    assert _sample(text, "viarte_rpc_in_flight", method) == 0


def _sample(text: str, name: str, method: str, *labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'method="{method}"' in line and all(lbl in line for lbl in labels):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {method} {labels}")


async def test_stale_token_does_not_block_anonymous_methods(server):
    _, channel = server
    md = (("authorization", "Bearer not-a-jwt"),)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth_pb2_grpc.AuthServiceStub(channel).Register(auth_pb2.RegisterRequest(email="x", password="y"), metadata=md)
    assert _info(err.value).reason == "WEAK_PASSWORD"  # reached the handler
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await auth_pb2_grpc.AuthServiceStub(channel).GetMe(auth_pb2.GetMeRequest(), metadata=md)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_verified_tokens_are_cached_until_expiry(signing_key, monkeypatch):
    import services.kit.auth as kit_auth_module

    decoded = []
    real_decode = kit_auth_module.decode_token

    def counting_decode(*args, **kwargs):
        decoded.append(1)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(kit_auth_module, "decode_token", counting_decode)
    keys = StaticKeys(signing_key.verification_key())
    authenticator = Authenticator(CONFIG, key_source=keys, api_key_resolver=_no_api_keys)
    fresh = token(signing_key, sub="cached")
    first = await authenticator.verify_access_token(fresh)
    second = await authenticator.verify_access_token(fresh)
    assert first == second and first.subject == "cached"
    assert len(decoded) == 1  # the second call was answered from the cache
    expired = issue_token(signing_key, subject="old", issuer="test-issuer", audience="test-aud", ttl_seconds=-60,
                          claims={"typ": "access"})
    for _ in range(2):
        with pytest.raises(ServiceError) as err:
            await authenticator.verify_access_token(expired)
        assert err.value.reason == "TOKEN_EXPIRED"
    # Retiring the key (emergency rotation) is honoured at once, cache or not.
    keys.keys[signing_key.kid] = signing_key.verification_key(not_after=0.0)
    with pytest.raises(ServiceError):
        await authenticator.verify_access_token(fresh)


async def test_access_log_is_one_json_line_per_rpc_with_the_request_id(server, signing_key, capfd):
    import json

    from services.kit.logs import configure_logging

    configure_logging(ServiceConfig(log_level="INFO"))
    _, channel = server
    md = (("authorization", f"Bearer {token(signing_key, sub='logged')}"), ("x-request-id", "req-123"))
    capfd.readouterr()
    await auth_pb2_grpc.AuthServiceStub(channel).GetMe(auth_pb2.GetMeRequest(), metadata=md)
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    access = [rec for rec in lines if rec.get("event") == "rpc" and rec.get("request_id") == "req-123"]
    assert len(access) == 1
    assert access[0]["method"] == "/viarte.auth.v1.AuthService/GetMe"
    assert access[0]["code"] == "OK" and access[0]["principal"] == "logged" and access[0]["level"] == "info"
    assert "Bearer" not in json.dumps(lines)  # credentials never reach the logs

    # A caller's id that does not look like one (JSON, spaces, an overlong value) is replaced.
    for bad in ('{"event": "forged"}', "x" * 129, "a b"):
        forged = (md[0], ("x-request-id", bad))
        await auth_pb2_grpc.AuthServiceStub(channel).GetMe(auth_pb2.GetMeRequest(), metadata=forged)
        lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
        ids = [rec["request_id"] for rec in lines if rec.get("event") == "rpc"]
        assert len(ids) == 1 and ids[0] != bad and len(ids[0]) == 24, ids
    configure_logging(ServiceConfig(log_level="WARNING"))


async def test_histogram_buckets_are_cumulative_and_end_at_the_count(server, signing_key):
    import httpx

    from services.kit.metrics import start_metrics_server

    _, channel = server
    metrics_port = start_metrics_server(0)
    md = (("authorization", f"Bearer {token(signing_key)}"),)
    for _ in range(3):
        await auth_pb2_grpc.AuthServiceStub(channel).GetMe(auth_pb2.GetMeRequest(), metadata=md)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    method = "/viarte.auth.v1.AuthService/GetMe"
    # This server's series only: the registry is per process, and other tests' servers (the real
    # auth service among them) serve the same method under their own service label.
    mine = f'service="{CONFIG.service_name}"'
    buckets = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("viarte_rpc_duration_seconds_bucket{") and f'method="{method}"' in line and mine in line
    ]
    assert len(buckets) == 17 and buckets == sorted(buckets)  # 16 bounds + Inf, cumulative
    count = _sample(text, "viarte_rpc_duration_seconds_count", method, mine)
    assert buckets[-1] == count >= 3
    codes = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith("viarte_rpc_total{") and f'method="{method}"' in line and mine in line]
    assert sum(codes) == count


async def test_a_generic_handler_without_a_method_table_is_still_behind_the_edge():
    """Generated code from before registered method handlers only adds a generic handler: the edge
    wraps it per method on first use (authentication, error mapping)."""
    from services.kit.interceptor import Edge, MethodPolicy

    async def get_me(request, context):
        return auth_pb2.GetMeResponse(user=auth_pb2.User(id=current_principal().subject))

    handlers = {"GetMe": grpc.unary_unary_rpc_method_handler(
        get_me, auth_pb2.GetMeRequest.FromString, auth_pb2.GetMeResponse.SerializeToString)}

    class OnlyGeneric(grpc.GenericRpcHandler):
        def service(self, details):
            return handlers.get(details.method.rsplit("/", 1)[1]) if details.method.startswith("/viarte.auth.v1.AuthService/") else None

    server = grpc.aio.server()
    edge = Edge(CONFIG, Authenticator(CONFIG, key_source=StaticKeys()), {"/viarte.auth.v1.AuthService/GetMe": MethodPolicy()})
    edge.register(server, lambda target: target.add_generic_rpc_handlers((OnlyGeneric(),)))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await auth_pb2_grpc.AuthServiceStub(channel).GetMe(auth_pb2.GetMeRequest())
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert _info(err.value).reason == "UNAUTHENTICATED"
    finally:
        await server.stop(0)


def test_access_line_timestamp_is_utc_iso_with_microseconds():
    from datetime import UTC, datetime

    from services.kit.logs import _utc_now_iso

    before = datetime.now(UTC)
    stamp = _utc_now_iso()
    after = datetime.now(UTC)
    parsed = datetime.fromisoformat(stamp)
    assert stamp.endswith("+00:00") and len(stamp) == len("2026-01-01T00:00:00.000000+00:00")
    assert before.replace(microsecond=0) <= parsed <= after

"""API-key scopes over the real mesh: every public RPC from the proto descriptors has an entry in the
kit's one scope table, refuses a key holding every scope but one of its own with MISSING_SCOPE (naming
that one) before its handler runs, and lets a key holding only its scopes through to the handler."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

from gateway.envoy_config import PUBLIC_SERVICES
from services.kit.scopes import METHOD_SCOPES, NO_SCOPE, SCOPES, USER_SESSION
from tests.fixtures.mesh import RunningMesh
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.errors import MissingScope, ViarteError, from_rpc_error

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Generous: the mesh shares two busy cores, and only liveness is asserted.
DEADLINE = 60.0


def public_methods() -> dict[str, MethodDescriptor]:
    """Every RPC of every public service, read from the generated descriptors (not from the table)."""
    methods: dict[str, MethodDescriptor] = {}
    for stub in sorted(ROOT.glob("viarte/*/v1/*_pb2.py")):
        module = importlib.import_module(".".join(stub.relative_to(ROOT).with_suffix("").parts))
        for service in module.DESCRIPTOR.services_by_name.values():
            if service.name.endswith("InternalService"):  # service principals only, never routed
                continue
            for method in service.methods:
                methods[f"/{service.full_name}/{method.name}"] = method
    return methods


def test_the_scope_table_covers_every_public_rpc_and_nothing_else() -> None:
    methods = public_methods()
    assert len(methods) > 40  # the descriptors were found
    missing = sorted(set(methods) - set(METHOD_SCOPES))
    assert not missing, f"public RPCs without an entry in services/kit/scopes.py METHOD_SCOPES: {missing}"
    stale = sorted(set(METHOD_SCOPES) - set(methods))
    assert not stale, f"METHOD_SCOPES entries for RPCs that do not exist: {stale}"
    used = {scope for scopes in METHOD_SCOPES.values() if scopes != USER_SESSION for scope in scopes}
    assert used <= set(SCOPES)
    assert set(SCOPES) <= used, f"scopes that grant nothing: {sorted(set(SCOPES) - used)}"
    # Issue 21: work on assets needs the asset scopes, whatever its own kind: every job create reads
    # the assets it names and stores its result; a preview frame reads the timeline's assets.
    creates = [path for path in methods if path.rsplit("/", 1)[1].startswith("Create") and path.endswith("Job")]
    assert len(creates) == 5, creates  # generation, face swap, render, upscale, training
    for path in creates:
        assert {"jobs:write", "assets:read", "assets:write"} <= set(METHOD_SCOPES[path]), path
    assert {"jobs:write", "assets:read"} <= set(METHOD_SCOPES["/viarte.render.v1.RenderService/RenderFrame"])


def _call(channel: grpc.Channel, path: str, method: MethodDescriptor, metadata: tuple[tuple[str, str], ...]) -> ViarteError | None:
    """Calls `path` with an empty request (the scope check comes before any validation); the error or None."""
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    codec: dict[str, Any] = {
        "request_serializer": request_cls.SerializeToString,
        "response_deserializer": response_cls.FromString,
    }
    request = request_cls()
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path, **codec)(iter([request]), metadata=metadata, timeout=DEADLINE))
        elif method.client_streaming:
            channel.stream_unary(path, **codec)(iter(()), metadata=metadata, timeout=DEADLINE)
        elif method.server_streaming:
            list(channel.unary_stream(path, **codec)(request, metadata=metadata, timeout=DEADLINE))
        else:
            channel.unary_unary(path, **codec)(request, metadata=metadata, timeout=DEADLINE)
    except grpc.RpcError as exc:
        return from_rpc_error(exc)
    return None


@pytest.fixture
def channels(mesh: RunningMesh) -> Iterator[dict[str, grpc.Channel]]:
    mesh.require(*PUBLIC_SERVICES)
    opened = {name: grpc.insecure_channel(address) for name, address in mesh.endpoints.items()}
    yield opened
    for channel in opened.values():
        channel.close()


def _cluster(path: str) -> str:
    service = path.split("/")[1]
    return next(name for name, services in PUBLIC_SERVICES.items() if service in services)


def test_every_public_rpc_refuses_an_api_key_lacking_its_scope(mesh: RunningMesh, channels: dict[str, grpc.Channel]) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(channels["auth"])
    registered = auth.Register(
        auth_pb2.RegisterRequest(email=f"scopes-{uuid.uuid4().hex[:12]}@example.com", password="correct horse battery 42"),
        timeout=DEADLINE,
    )
    session = (("authorization", f"Bearer {registered.tokens.access_token}"),)

    def key(*scopes: str) -> tuple[tuple[str, str], ...]:
        created = auth.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="scopes", scopes=list(scopes)), metadata=session, timeout=DEADLINE
        )
        return (("x-api-key", created.secret),)

    every = key(*SCOPES)
    # Each scope's complement: a key with every other scope proves this very scope is the one needed.
    without = {scope: key(*(s for s in SCOPES if s != scope)) for scope in SCOPES}
    only: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}

    def just(*scopes: str) -> tuple[tuple[str, str], ...]:
        """A key holding just these scopes (one per set)."""
        if scopes not in only:
            only[scopes] = key(*scopes)
        return only[scopes]

    def admin_session() -> tuple[tuple[str, str], ...]:
        # A fresh session per call: Logout ends the session it is called with.
        tokens = auth.Login(auth_pb2.LoginRequest(email=mesh.admin[0], password=mesh.admin[1]), timeout=DEADLINE).tokens
        return (("authorization", f"Bearer {tokens.access_token}"),)

    problems: list[str] = []
    for path, method in sorted(public_methods().items()):
        channel = channels[_cluster(path)]
        needed = METHOD_SCOPES[path]
        if needed == USER_SESSION:
            refused = _call(channel, path, method, every)
            if refused is None or (refused.code, refused.reason) != (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"):
                problems.append(f"{path}: a key with every scope got {refused!r}, want PERMISSION_DENIED")
            allowed = _call(channel, path, method, admin_session())
            if allowed is not None and allowed.code == grpc.StatusCode.PERMISSION_DENIED:
                problems.append(f"{path}: an admin session was refused: {allowed!r}")
            continue
        if needed == NO_SCOPE:
            allowed = _call(channel, path, method, just("assets:read"))
            if allowed is not None and allowed.code == grpc.StatusCode.PERMISSION_DENIED:
                problems.append(f"{path}: needs no scope, yet a narrow key was refused: {allowed!r}")
            continue
        for scope in needed:  # each one is needed: e.g. a job create without assets:read (issue 21)
            refused = _call(channel, path, method, without[scope])
            if not (isinstance(refused, MissingScope) and refused.scope == scope and refused.metadata == {"scope": scope}):
                problems.append(f"{path}: a key lacking {scope!r} got {refused!r}, want PERMISSION_DENIED MISSING_SCOPE")
        allowed = _call(channel, path, method, just(*needed))
        if allowed is not None and allowed.code == grpc.StatusCode.PERMISSION_DENIED:
            problems.append(f"{path}: a key with just {needed!r} was refused: {allowed!r}")
    assert not problems, "\n".join(problems)


def test_create_api_key_refuses_unknown_scopes_by_field_path(channels: dict[str, grpc.Channel]) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(channels["auth"])
    registered = auth.Register(
        auth_pb2.RegisterRequest(email=f"scopes-{uuid.uuid4().hex[:12]}@example.com", password="correct horse battery 42"),
        timeout=DEADLINE,
    )
    session = (("authorization", f"Bearer {registered.tokens.access_token}"),)
    request = auth_pb2.CreateApiKeyRequest(
        name="k", scopes=["assets:read", "assets:read", "projects:write", "admin", "x" * 10_000]
    )
    with pytest.raises(grpc.RpcError) as exc:
        auth.CreateApiKey(request, metadata=session, timeout=DEADLINE)
    err = from_rpc_error(exc.value)
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    # Paths index the request as sent (duplicates included); the huge name is not echoed back.
    assert [v.field for v in err.field_violations] == ["scopes[3]", "scopes[4]"]
    assert "x" * 100 not in str(err) and "projects:write" in err.field_violations[0].description
    created = auth.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="k", scopes=list(SCOPES)), metadata=session, timeout=DEADLINE
    )
    assert list(created.api_key.scopes) == list(SCOPES)

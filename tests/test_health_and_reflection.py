"""Every service of the running mesh answers health checks and lists its contracts over reflection
(what `grpcurl list` shows), each as its own process started by the dev runner."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

EXPECTED = {
    "auth": {"viarte.auth.v1.AuthService", "viarte.auth.v1.AuthInternalService"},
    "storage": {"viarte.storage.v1.StorageService", "viarte.storage.v1.StorageInternalService"},
    "inference": {
        "viarte.inference.v1.GenerationService",
        "viarte.inference.v1.FaceSwapService",
        "viarte.inference.v1.AssistantService",
    },
    "render": {"viarte.render.v1.RenderService", "viarte.render.v1.UpscaleService", "viarte.render.v1.ProjectService"},
    "account": {
        "viarte.account.v1.UsageService",
        "viarte.account.v1.WebhookService",
        "viarte.account.v1.AccountInternalService",
    },
}


def _list_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (answer,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    return {s.name for s in answer.list_services_response.service}


def _file_of(address: str, symbol: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
        (answer,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert answer.HasField("file_descriptor_response"), answer
    return set(answer.file_descriptor_response.file_descriptor_proto)


@pytest.mark.e2e
@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_service_health_and_reflection(mesh, service):
    assert service in mesh.services, f"{service} is not running: {mesh.log(service)[-2000:]}"
    address = mesh.endpoints[service]
    names = _list_services(address)
    assert EXPECTED[service] <= names
    assert {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ["", *EXPECTED[service]]:
            answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, name
    for name in EXPECTED[service]:
        assert _file_of(address, name), name  # descriptors are served, so clients can call it blind

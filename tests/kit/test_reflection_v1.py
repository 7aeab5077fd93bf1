"""Server reflection ``grpc.reflection.v1`` (asked first by current grpcurl and buf) next to v1alpha.

grpcio-reflection ships only the v1alpha stubs, so the v1 client here is built the way any v1
client sees the protocol: the v1 proto's messages under package ``grpc.reflection.v1`` in a
descriptor pool of its own, sent to ``/grpc.reflection.v1.ServerReflection/ServerReflectionInfo``.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

from services.kit.config import ServiceConfig
from services.kit.server import Service, build_server, stop
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def _v1_messages() -> tuple[Any, Any]:
    """ServerReflectionRequest/Response of grpc/reflection/v1/reflection.proto, in a private pool."""
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = "grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    proto.options.Clear()
    for message in proto.message_type:
        for f in message.field:
            if f.type_name:
                f.type_name = f.type_name.replace("v1alpha", "v1")
    proto.ClearField("service")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    request = message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionRequest"))
    response = message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse"))
    return request, response


class Nothing(auth_pb2_grpc.AuthServiceServicer):
    pass


@pytest.fixture(scope="module")
async def channel():
    server, port = await build_server(ServiceConfig(port=0), [Service(Nothing())])
    await server.start()
    chan = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield chan
    await chan.close()
    await stop(server, 0)


async def _ask(channel: grpc.aio.Channel, **request: str) -> Any:
    req_cls, resp_cls = _v1_messages()
    call = channel.stream_stream(V1_METHOD, request_serializer=req_cls.SerializeToString,
                                 response_deserializer=resp_cls.FromString)
    responses = [r async for r in call(iter([req_cls(**request)]), timeout=30)]
    assert len(responses) == 1
    return responses[0]


async def test_v1_lists_services_including_itself(channel):
    answer = await _ask(channel, list_services="")
    names = {s.name for s in answer.list_services_response.service}
    assert {
        "viarte.auth.v1.AuthService", "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
    } <= names


async def test_v1_serves_file_descriptors(channel):
    answer = await _ask(channel, file_containing_symbol="viarte.auth.v1.AuthService")
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in answer.file_descriptor_response.file_descriptor_proto]
    services = {f"{f.package}.{s.name}" for f in files for s in f.service}
    assert "viarte.auth.v1.AuthService" in services
    assert auth_pb2.DESCRIPTOR.name in {f.name for f in files}


async def test_v1_describes_the_v1_reflection_service(channel):
    answer = await _ask(channel, file_containing_symbol="grpc.reflection.v1.ServerReflection")
    assert answer.WhichOneof("message_response") == "file_descriptor_response"
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in answer.file_descriptor_response.file_descriptor_proto]
    assert [f.package for f in files] == ["grpc.reflection.v1"]


async def test_v1_unknown_symbol_is_a_not_found_error_response(channel):
    answer = await _ask(channel, file_containing_symbol="viarte.nope.v1.Nope")
    assert answer.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]

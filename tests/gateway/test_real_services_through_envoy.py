"""The real auth and storage services behind the real Envoy, called over gRPC-Web."""

from __future__ import annotations

import hashlib
import io
import os

import grpc
import pytest_asyncio
from google.rpc import error_details_pb2
from PIL import Image

from gateway.config import GatewayConfig
from gateway.envoy import EnvoyProcess
from gateway.grpcweb import GrpcWebClient, GrpcWebError
from viarte.auth.v1 import auth_pb2
from viarte.storage.v1 import storage_pb2

AUTH = "/viarte.auth.v1.AuthService/"
STORAGE = "/viarte.storage.v1.StorageService/"


def _noise_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


@pytest_asyncio.fixture(scope="module")
async def mesh_gateway(auth_service, storage_service, envoy_factory) -> EnvoyProcess:
    config = GatewayConfig(
        port=0,
        admin_port=0,
        static_dir="",
        health_check_interval_seconds=0.5,
        auth_address=auth_service.address,
        storage_address=storage_service.address,
        inference_address=auth_service.address,
        render_address=auth_service.address,
    )
    envoy = await envoy_factory(config)
    await envoy.wait_healthy(["auth", "storage"])
    return envoy


async def test_login_errors_carry_the_auth_reason(mesh_gateway: EnvoyProcess, user_factory) -> None:
    user = await user_factory()
    async with GrpcWebClient(mesh_gateway.url) as client:
        me = await client.unary(
            AUTH + "GetMe", auth_pb2.GetMeRequest(), auth_pb2.GetMeResponse, metadata=user.metadata
        )
        try:
            await client.unary(
                AUTH + "Login",
                auth_pb2.LoginRequest(email=user.email, password="not the password 1"),
                auth_pb2.LoginResponse,
            )
        except GrpcWebError as error:
            refused = error
    assert me.user.id == user.id
    assert refused.code is grpc.StatusCode.UNAUTHENTICATED
    info = refused.detail(error_details_pb2.ErrorInfo)
    assert info is not None and (info.reason, info.domain) == ("INVALID_CREDENTIALS", "viarte.auth")


async def test_download_streams_chunks_and_isolation_holds(
    mesh_gateway, storage_service, user_factory
) -> None:
    owner, stranger = await user_factory(), await user_factory()
    data = _noise_png(1000)  # ~3 MB: several of the service's 1 MiB download chunks
    asset_id = await storage_service.upload(owner, data, "noise.png", "image/png")
    async with GrpcWebClient(mesh_gateway.url) as client:
        received = [
            r
            async for r in client.server_stream(
                STORAGE + "DownloadAsset",
                storage_pb2.DownloadAssetRequest(asset_id=asset_id),
                storage_pb2.DownloadAssetResponse,
                metadata=owner.metadata,
            )
        ]
        try:
            await client.unary(
                STORAGE + "GetAsset",
                storage_pb2.GetAssetRequest(asset_id=asset_id),
                storage_pb2.GetAssetResponse,
                metadata=stranger.metadata,
            )
        except GrpcWebError as error:
            hidden = error
    assert len(received) > 1
    assert (
        hashlib.sha256(b"".join(r.message.chunk for r in received)).digest() == hashlib.sha256(data).digest()
    )
    assert received[0].message.asset.id == asset_id
    assert hidden.code is grpc.StatusCode.NOT_FOUND
    assert hidden.reason == "ASSET_NOT_FOUND"


async def test_a_client_cannot_spoof_its_address_past_envoy(tmp_path, envoy_factory) -> None:
    """Auth throttles per client address and trusts Envoy's appended x-forwarded-for hop: a forged
    header must not give each attempt a fresh address."""
    from tests.fixtures.auth import running_auth, test_auth_config

    config = test_auth_config(
        str(tmp_path),
        trusted_proxies=("127.0.0.1",),
        login_max_failures_per_address=3,
        login_max_failures_per_account=100,
    )
    async with running_auth(config) as auth:
        gateway = GatewayConfig(
            port=0,
            admin_port=0,
            static_dir="",
            health_check_interval_seconds=0.5,
            auth_address=auth.address,
            storage_address=auth.address,
            inference_address=auth.address,
            render_address=auth.address,
        )
        envoy = await envoy_factory(gateway)
        await envoy.wait_healthy(["auth"])
        codes = []
        async with GrpcWebClient(envoy.url) as client:
            for attempt in range(6):
                try:
                    await client.unary(
                        AUTH + "Login",
                        auth_pb2.LoginRequest(email=f"nobody{attempt}@viarte.test", password="wrong password 1"),
                        auth_pb2.LoginResponse,
                        metadata=(("x-forwarded-for", f"198.51.100.{attempt}"),),
                    )
                except GrpcWebError as error:
                    codes.append(error.code)
    assert codes[:3] == [grpc.StatusCode.UNAUTHENTICATED] * 3
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes[3:]

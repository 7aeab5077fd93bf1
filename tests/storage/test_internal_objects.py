"""Service-owned objects (``StorageInternalService.PutObject/ResolveObject/DeleteObject``: kept latents
between a job's attempts) over a real loopback server and SeaweedFS, through the kit's
``StorageClient`` as the services use them."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from typing import Any

import grpc
import httpx
import pytest

from services.kit.errors import ServiceError
from services.kit.storage_client import StorageClient
from viarte.storage.v1 import storage_pb2

from .helpers import object_keys

pytestmark = pytest.mark.timeout(300)


async def test_put_resolve_delete_a_service_object(storage_service: Any, user_factory: Any) -> None:
    # As a service sees it: the storage address, a service token from auth.
    client = StorageClient(replace(storage_service.config, storage_address=storage_service.address))
    key = f"kept-latents/{uuid.uuid4().hex}/abc123"
    data = os.urandom(3 * 1024 * 1024 + 17)  # several stream chunks
    try:
        assert await client.resolve_object(key) is None
        await client.put_object(key, data)
        url = await client.resolve_object(key)
        assert url is not None
        async with httpx.AsyncClient() as http:  # any node reads it from the URL
            assert (await http.get(url)).content == data
        await client.put_object(key, b"replaced")  # the same key again replaces it
        async with httpx.AsyncClient() as http:
            assert (await http.get(str(await client.resolve_object(key)))).content == b"replaced"
        # Not an asset: no user lists it, it lives under internal/.
        user = await user_factory()
        listed = await storage_service.stub.ListAssets(storage_pb2.ListAssetsRequest(), metadata=user.metadata)
        assert not listed.assets
        assert f"internal/{key}" in object_keys(storage_service, "internal/")
        await client.delete_object(key)
        assert await client.resolve_object(key) is None
        await client.delete_object(key)  # already gone: no error
        for bad in ("", "../users/x", "a//b", "a/./b", "x" * 201, "sp ace"):
            with pytest.raises(ServiceError) as err:
                await client.put_object(bad, b"x")
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and err.value.reason == "INVALID_ARGUMENT", bad
    finally:
        await client.close()


async def test_a_user_token_cannot_reach_service_objects(storage_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    internal = storage_service.internal_stub
    for call in (internal.ResolveObject(storage_pb2.ResolveObjectRequest(key="kept-latents/x"), metadata=user.metadata),
                 internal.DeleteObject(storage_pb2.DeleteObjectRequest(key="kept-latents/x"), metadata=user.metadata)):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call
        assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED

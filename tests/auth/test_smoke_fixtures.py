"""The shared fixtures other areas depend on: a real server, real users, working tokens."""

from __future__ import annotations

import grpc

from viarte.auth.v1 import auth_pb2, auth_pb2_grpc


async def test_user_factory_gives_a_signed_in_user(auth_service, user_factory) -> None:
    user = await user_factory()
    async with grpc.aio.insecure_channel(auth_service.address) as channel:
        me = await auth_pb2_grpc.AuthServiceStub(channel).GetMe(
            auth_pb2.GetMeRequest(), metadata=user.metadata
        )
    assert me.user.id == user.id
    assert me.user.email == user.email
    assert me.user.role == auth_pb2.ROLE_USER
    assert user.metadata == (("authorization", f"Bearer {user.access_token}"),)


async def test_user_factory_admin_has_the_admin_role(auth_service, user_factory) -> None:
    admin = await user_factory(admin=True)
    async with grpc.aio.insecure_channel(auth_service.address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=admin.metadata)
        listed = await stub.ListUsers(auth_pb2.ListUsersRequest(page_size=500), metadata=admin.metadata)
    assert me.user.role == auth_pb2.ROLE_ADMIN
    assert admin.id in {u.id for u in listed.users}

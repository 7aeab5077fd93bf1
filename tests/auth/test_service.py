"""AuthService and AuthInternalService over a real loopback server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from tests.auth.helpers import expect_failure
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def channel(auth_service) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(auth_service.address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceStub:
    return auth_pb2_grpc.AuthServiceStub(channel)


@pytest.fixture
def internal(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthInternalServiceStub:
    return auth_pb2_grpc.AuthInternalServiceStub(channel)


def _email() -> str:
    return f"svc-{uuid.uuid4().hex[:10]}@viarte.test"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def service_token(internal: auth_pb2_grpc.AuthInternalServiceStub, auth_service) -> str:
    answer = await internal.IssueServiceToken(
        auth_pb2.IssueServiceTokenRequest(
            service="render", secret=auth_service.config.internal_secret.reveal()
        )
    )
    return str(answer.access_token)


# -- Register ---------------------------------------------------------------------------------
async def test_register_normalises_the_email_and_signs_in(stub) -> None:
    local = uuid.uuid4().hex[:8]
    answer = await stub.Register(
        auth_pb2.RegisterRequest(
            email=f"  Ann.{local}@EXAMPLE.com ", password="a long passphrase", display_name=" Ann "
        )
    )
    assert answer.user.email == f"ann.{local}@example.com"
    assert answer.user.display_name == "Ann"
    assert answer.user.role == auth_pb2.ROLE_USER
    assert answer.tokens.token_type == "Bearer"
    assert answer.tokens.refresh_token.startswith("rt_")
    assert answer.tokens.access_token_expire_time.seconds < answer.tokens.refresh_token_expire_time.seconds
    me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(answer.tokens.access_token))
    assert me.user.id == answer.user.id
    # The same address in another case is the same account.
    failure = await expect_failure(
        stub.Register(
            auth_pb2.RegisterRequest(email=f"ANN.{local}@example.com", password="another passphrase")
        )
    )
    assert (failure.code, failure.reason, failure.domain) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "EMAIL_TAKEN",
        "viarte.auth",
    )


@pytest.mark.parametrize(
    "email", ["", "no-at-sign", "a@b", "two@@example.com", "a b@example.com", "x@-bad-.com"]
)
async def test_register_rejects_invalid_emails(stub, email: str) -> None:
    failure = await expect_failure(
        stub.Register(auth_pb2.RegisterRequest(email=email, password="a long passphrase"))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EMAIL")
    assert [f for f, _ in failure.field_violations] == ["email"]


@pytest.mark.parametrize("password", ["short", "password123", "aaaaaaaaaaaaaaa", "x" * 257])
async def test_register_enforces_the_password_policy(stub, password: str) -> None:
    failure = await expect_failure(stub.Register(auth_pb2.RegisterRequest(email=_email(), password=password)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "WEAK_PASSWORD")
    assert failure.field_violations and all(f == "password" for f, _ in failure.field_violations)


# -- Login / Refresh / Logout -----------------------------------------------------------------
async def test_login_with_any_case_and_long_passwords(stub) -> None:
    email, password = _email(), "ü" * 80 + "-long-unicode-password"  # > 72 bytes: every byte counts
    await stub.Register(auth_pb2.RegisterRequest(email=email, password=password))
    answer = await stub.Login(auth_pb2.LoginRequest(email=email.upper(), password=password))
    assert answer.user.email == email
    failure = await expect_failure(
        stub.Login(auth_pb2.LoginRequest(email=email, password=password[:-1] + "X"))
    )
    assert failure.reason == "INVALID_CREDENTIALS"
    failure = await expect_failure(stub.Login(auth_pb2.LoginRequest(email=email, password=password * 100)))
    assert failure.reason == "INVALID_CREDENTIALS"


async def test_refresh_rotates_and_the_new_pair_works(stub, user_factory) -> None:
    user = await user_factory()
    rotated = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=user.refresh_token))
    assert rotated.tokens.refresh_token != user.refresh_token
    me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(rotated.tokens.access_token))
    assert me.user.id == user.id
    again = await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=rotated.tokens.refresh_token))
    assert again.tokens.access_token


@pytest.mark.parametrize("token", ["", "garbage", "rt_" + "A" * 43, "vk_" + "A" * 43])
async def test_refresh_rejects_unknown_tokens(stub, token: str) -> None:
    failure = await expect_failure(stub.Refresh(auth_pb2.RefreshRequest(refresh_token=token)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_logout_revokes_access_and_refresh_tokens_of_that_session_only(stub, user_factory) -> None:
    user = await user_factory()
    other_session = await stub.Login(auth_pb2.LoginRequest(email=user.email, password=user.password))
    await stub.Logout(auth_pb2.LogoutRequest(), metadata=user.metadata)
    failure = await expect_failure(stub.GetMe(auth_pb2.GetMeRequest(), metadata=user.metadata))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REVOKED")
    failure = await expect_failure(stub.Refresh(auth_pb2.RefreshRequest(refresh_token=user.refresh_token)))
    assert failure.reason == "TOKEN_REVOKED"
    me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(other_session.tokens.access_token))
    assert me.user.id == user.id


async def test_anonymous_calls_are_refused(stub) -> None:
    for call in (stub.GetMe(auth_pb2.GetMeRequest()), stub.ListApiKeys(auth_pb2.ListApiKeysRequest())):
        failure = await expect_failure(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")


# -- public keys ------------------------------------------------------------------------------
async def test_list_public_keys_is_anonymous_and_names_the_signing_kid(stub, user_factory) -> None:
    import jwt

    user = await user_factory()
    answer = await stub.ListPublicKeys(auth_pb2.ListPublicKeysRequest())
    kid = jwt.get_unverified_header(user.access_token)["kid"]
    active = [k for k in answer.keys if k.kid == kid]
    assert len(active) == 1
    assert (active[0].kty, active[0].alg, active[0].crv) == ("OKP", "EdDSA", "Ed25519")
    assert answer.max_age_seconds > 0


# -- API keys ---------------------------------------------------------------------------------
async def test_api_key_lifecycle(stub, internal, auth_service, user_factory) -> None:
    user = await user_factory()
    created = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="ci", scopes=["assets:read", "jobs:write"], ttl_seconds=3600),
        metadata=user.metadata,
    )
    secret = created.secret
    assert secret.startswith("vk_") and len(secret) > 40
    assert created.api_key.prefix == secret[:7] and secret not in str(created.api_key)
    assert list(created.api_key.scopes) == ["assets:read", "jobs:write"]
    assert created.api_key.HasField("expire_time") and not created.api_key.HasField("last_used_time")
    # The key authenticates and reports its own scopes.
    me = await stub.GetMe(auth_pb2.GetMeRequest(), metadata=(("x-api-key", secret),))
    assert me.user.id == user.id and list(me.scopes) == ["assets:read", "jobs:write"]
    # Services resolve it through the internal API, which records the use.
    svc = await service_token(internal, auth_service)
    verified = await internal.VerifyApiKey(auth_pb2.VerifyApiKeyRequest(api_key=secret), metadata=bearer(svc))
    assert verified.user.id == user.id and verified.api_key_id == created.api_key.id
    assert list(verified.scopes) == ["assets:read", "jobs:write"] and verified.max_age_seconds > 0
    listed = await stub.ListApiKeys(auth_pb2.ListApiKeysRequest(), metadata=user.metadata)
    assert [k.id for k in listed.api_keys] == [created.api_key.id]
    assert listed.api_keys[0].HasField("last_used_time")
    assert "secret" not in auth_pb2.ApiKey.DESCRIPTOR.fields_by_name  # only a prefix is ever listed
    await stub.RevokeApiKey(auth_pb2.RevokeApiKeyRequest(id=created.api_key.id), metadata=user.metadata)
    listed = await stub.ListApiKeys(auth_pb2.ListApiKeysRequest(), metadata=user.metadata)
    assert listed.api_keys[0].revoked
    failure = await expect_failure(
        internal.VerifyApiKey(auth_pb2.VerifyApiKeyRequest(api_key=secret), metadata=bearer(svc))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")
    failure = await expect_failure(stub.GetMe(auth_pb2.GetMeRequest(), metadata=(("x-api-key", secret),)))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED


async def test_create_api_key_validates_its_input(stub, user_factory) -> None:
    user = await user_factory()
    failure = await expect_failure(
        stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="", scopes=["root"], ttl_seconds=-1), metadata=user.metadata
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert {f for f, _ in failure.field_violations} == {"name", "scopes[0]", "ttl_seconds"}


async def test_api_keys_cannot_manage_api_keys(stub, user_factory) -> None:
    user = await user_factory()
    secret = (
        await stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="k", scopes=["jobs:read"]), metadata=user.metadata
        )
    ).secret
    as_key = (("x-api-key", secret),)
    failure = await expect_failure(
        stub.CreateApiKey(auth_pb2.CreateApiKeyRequest(name="k2", scopes=["jobs:read"]), metadata=as_key)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


async def test_another_users_api_key_is_not_found(stub, user_factory) -> None:
    owner, other = await user_factory(), await user_factory()
    key = await stub.CreateApiKey(
        auth_pb2.CreateApiKeyRequest(name="k", scopes=["jobs:read"]), metadata=owner.metadata
    )
    for key_id in (key.api_key.id, str(uuid.uuid4())):
        failure = await expect_failure(
            stub.RevokeApiKey(auth_pb2.RevokeApiKeyRequest(id=key_id), metadata=other.metadata)
        )
        assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "API_KEY_NOT_FOUND")
    listed = await stub.ListApiKeys(auth_pb2.ListApiKeysRequest(), metadata=owner.metadata)
    assert not listed.api_keys[0].revoked


# -- internal service -------------------------------------------------------------------------
async def test_internal_service_requires_a_service_principal(stub, internal, user_factory) -> None:
    user = await user_factory()
    secret = (
        await stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="k", scopes=["jobs:read"]), metadata=user.metadata
        )
    ).secret
    for metadata in (user.metadata, (("x-api-key", secret),)):
        failure = await expect_failure(
            internal.VerifyApiKey(auth_pb2.VerifyApiKeyRequest(api_key=secret), metadata=metadata)
        )
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
    failure = await expect_failure(internal.VerifyApiKey(auth_pb2.VerifyApiKeyRequest(api_key=secret)))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED


async def test_issue_service_token(internal, stub, auth_service) -> None:
    import jwt

    token = await service_token(internal, auth_service)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "service:render" and claims["role"] == "service"
    # A service principal is not a user.
    failure = await expect_failure(stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(token)))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    failure = await expect_failure(
        internal.IssueServiceToken(auth_pb2.IssueServiceTokenRequest(service="render", secret="wrong"))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")


# -- admin ------------------------------------------------------------------------------------
async def test_admin_rpcs_need_the_admin_role(stub, user_factory) -> None:
    user = await user_factory()
    for call in (
        stub.ListUsers(auth_pb2.ListUsersRequest(), metadata=user.metadata),
        stub.UpdateUser(
            auth_pb2.UpdateUserRequest(id=user.id, role=auth_pb2.ROLE_ADMIN), metadata=user.metadata
        ),
    ):
        failure = await expect_failure(call)
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")


async def test_list_users_pages_through_everyone(stub, user_factory) -> None:
    admin = await user_factory(admin=True)
    mine = {(await user_factory()).id for _ in range(3)}
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListUsers(
            auth_pb2.ListUsersRequest(page_size=2, page_token=token), metadata=admin.metadata
        )
        assert len(page.users) <= 2
        seen.extend(u.id for u in page.users)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) and mine | {admin.id} <= set(seen)
    failure = await expect_failure(
        stub.ListUsers(auth_pb2.ListUsersRequest(page_token="bm9wZQ"), metadata=admin.metadata)
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_disabling_a_user_revokes_everything(stub, user_factory) -> None:
    admin, user = await user_factory(admin=True), await user_factory()
    secret = (
        await stub.CreateApiKey(
            auth_pb2.CreateApiKeyRequest(name="k", scopes=["jobs:read"]), metadata=user.metadata
        )
    ).secret
    updated = await stub.UpdateUser(
        auth_pb2.UpdateUserRequest(id=user.id, disabled=True), metadata=admin.metadata
    )
    assert updated.user.disabled and updated.user.role == auth_pb2.ROLE_USER
    failure = await expect_failure(stub.GetMe(auth_pb2.GetMeRequest(), metadata=user.metadata))
    assert failure.reason == "TOKEN_REVOKED"
    failure = await expect_failure(stub.Refresh(auth_pb2.RefreshRequest(refresh_token=user.refresh_token)))
    assert failure.reason == "TOKEN_REVOKED"
    failure = await expect_failure(stub.GetMe(auth_pb2.GetMeRequest(), metadata=(("x-api-key", secret),)))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    # Only the right password learns that the account is disabled.
    failure = await expect_failure(
        stub.Login(auth_pb2.LoginRequest(email=user.email, password=user.password))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_DISABLED")
    failure = await expect_failure(
        stub.Login(auth_pb2.LoginRequest(email=user.email, password="wrong password!"))
    )
    assert failure.reason == "INVALID_CREDENTIALS"
    await stub.UpdateUser(auth_pb2.UpdateUserRequest(id=user.id, disabled=False), metadata=admin.metadata)
    await stub.Login(auth_pb2.LoginRequest(email=user.email, password=user.password))


async def test_demotion_takes_effect_immediately(stub, user_factory) -> None:
    admin, other = await user_factory(admin=True), await user_factory(admin=True)
    await stub.UpdateUser(
        auth_pb2.UpdateUserRequest(id=other.id, role=auth_pb2.ROLE_USER), metadata=admin.metadata
    )
    failure = await expect_failure(stub.ListUsers(auth_pb2.ListUsersRequest(), metadata=other.metadata))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED  # role change revoked the sessions
    relogin = await stub.Login(auth_pb2.LoginRequest(email=other.email, password=other.password))
    assert relogin.user.role == auth_pb2.ROLE_USER
    failure = await expect_failure(
        stub.ListUsers(auth_pb2.ListUsersRequest(), metadata=bearer(relogin.tokens.access_token))
    )
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED


async def test_update_user_errors(stub, user_factory) -> None:
    admin = await user_factory(admin=True)
    failure = await expect_failure(
        stub.UpdateUser(
            auth_pb2.UpdateUserRequest(id=str(uuid.uuid4()), role=auth_pb2.ROLE_ADMIN),
            metadata=admin.metadata,
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    failure = await expect_failure(
        stub.UpdateUser(auth_pb2.UpdateUserRequest(id=admin.id, disabled=True), metadata=admin.metadata)
    )
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT

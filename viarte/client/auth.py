"""Users, sessions and API keys (``viarte.auth.v1.AuthService``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from viarte.auth.v1 import auth_pb2, auth_pb2_grpc
from viarte.client._base import Page, SyncResource, _Resource, sync
from viarte.credentials import TokenCredentials, Tokens
from viarte.errors import ClientError
from viarte.type.v1 import limits_pb2

__all__ = ["ApiKeys", "AsyncApiKeys", "AsyncAuth", "Auth"]


class AsyncAuth(_Resource):
    """Users and sessions (``viarte.auth.v1.AuthService``)."""

    @property
    def _stub(self) -> auth_pb2_grpc.AuthServiceStub:
        return self._t.stub(auth_pb2_grpc.AuthServiceStub, "auth")

    async def register(self, email: str, password: str, display_name: str = "") -> auth_pb2.User:
        """Creates the user and signs this client in as them. Never retried (not idempotent)."""
        req = auth_pb2.RegisterRequest(email=email, password=password, display_name=display_name)
        resp: auth_pb2.RegisterResponse = await self._t.unary(self._stub.Register, req, retry=False, authenticate=False)
        self._client.use_tokens(Tokens.from_proto(resp.tokens))
        return resp.user

    async def login(self, email: str, password: str) -> auth_pb2.User:
        """Signs this client in; the access token is then refreshed before it expires."""
        req = auth_pb2.LoginRequest(email=email, password=password)
        # Not retried: failed attempts count towards the login throttle.
        resp: auth_pb2.LoginResponse = await self._t.unary(self._stub.Login, req, retry=False, authenticate=False)
        self._client.use_tokens(Tokens.from_proto(resp.tokens))
        return resp.user

    async def exchange_refresh_token(self, refresh_token: str) -> Tokens:
        """Rotates a refresh token into a new pair. Retried once, after the policy's first backoff,
        on UNAVAILABLE (a lost answer, a reset connection): the server may have rotated the token
        already, and it rotates a spent token again only when it comes back within its retry grace
        (``refresh_retry_grace_seconds``) while its successor is unused; any other second use
        revokes the session. DEADLINE_EXCEEDED is not retried: the deadline covers every attempt."""
        req = auth_pb2.RefreshRequest(refresh_token=refresh_token)
        resp = await self._t.unary(self._stub.Refresh, req, retry=True, max_attempts=2, authenticate=False)
        return Tokens.from_proto(resp.tokens)

    async def refresh(self) -> Tokens:
        creds = self._client.credentials
        if not isinstance(creds, TokenCredentials):
            raise ClientError("not signed in with a token pair")
        creds.set_tokens(await self.exchange_refresh_token(creds.tokens.refresh_token))
        return creds.tokens

    async def logout(self) -> None:
        await self._t.unary(self._stub.Logout, auth_pb2.LogoutRequest(), retry=False)
        self._client.use_credentials(None)

    async def me(self) -> auth_pb2.GetMeResponse:
        resp: auth_pb2.GetMeResponse = await self._t.unary(self._stub.GetMe, auth_pb2.GetMeRequest(), retry=True)
        return resp

    async def public_keys(self) -> auth_pb2.ListPublicKeysResponse:
        resp: auth_pb2.ListPublicKeysResponse = await self._t.unary(
            self._stub.ListPublicKeys, auth_pb2.ListPublicKeysRequest(), retry=True, authenticate=False
        )
        return resp

    async def list_users(self, *, page_size: int = 50, page_token: str = "") -> Page[auth_pb2.User]:
        resp = await self._t.unary(
            self._stub.ListUsers, auth_pb2.ListUsersRequest(page_size=page_size, page_token=page_token), retry=True
        )
        return Page(list(resp.users), resp.next_page_token)

    async def update_user(
        self, user_id: str, *, role: Literal["user", "admin"] | None = None, disabled: bool = False,
        limits: limits_pb2.Limits | None = None,
    ) -> auth_pb2.User:
        """Admins only. ``limits``: replaces the user's budget and request limits over all of their
        API keys (``viarte.type.v1.Limits``, 0 = none); None keeps them."""
        roles = {"user": auth_pb2.ROLE_USER, "admin": auth_pb2.ROLE_ADMIN, None: auth_pb2.ROLE_UNSPECIFIED}
        req = auth_pb2.UpdateUserRequest(id=user_id, role=roles[role], disabled=disabled, limits=limits)
        resp: auth_pb2.UpdateUserResponse = await self._t.unary(self._stub.UpdateUser, req, retry=True)
        return resp.user


class AsyncApiKeys(_Resource):
    """API keys for partner backends."""

    @property
    def _stub(self) -> auth_pb2_grpc.AuthServiceStub:
        return self._t.stub(auth_pb2_grpc.AuthServiceStub, "auth")

    async def create(
        self, name: str, scopes: Sequence[str] = (), *, ttl_seconds: int = 0, limits: limits_pb2.Limits | None = None
    ) -> tuple[auth_pb2.ApiKey, str]:
        """Returns the key and its secret (shown once). Not retried: there is no request id.
        ``limits``: the key's monthly credit budget, creates and reads per minute and concurrent
        jobs (``viarte.type.v1.Limits``, 0 = none); over them, job calls raise ``QuotaExceeded`` /
        ``RateLimited``."""
        req = auth_pb2.CreateApiKeyRequest(name=name, scopes=list(scopes), ttl_seconds=ttl_seconds, limits=limits)
        resp = await self._t.unary(self._stub.CreateApiKey, req, retry=False)
        return resp.api_key, resp.secret

    async def list(self) -> list[auth_pb2.ApiKey]:
        resp = await self._t.unary(self._stub.ListApiKeys, auth_pb2.ListApiKeysRequest(), retry=True)
        return list(resp.api_keys)

    async def revoke(self, key_id: str) -> None:
        await self._t.unary(self._stub.RevokeApiKey, auth_pb2.RevokeApiKeyRequest(id=key_id), retry=True)


class Auth(SyncResource[AsyncAuth]):
    """The sync :class:`AsyncAuth`."""

    register = sync(AsyncAuth.register)
    login = sync(AsyncAuth.login)
    refresh = sync(AsyncAuth.refresh)
    logout = sync(AsyncAuth.logout)
    me = sync(AsyncAuth.me)
    public_keys = sync(AsyncAuth.public_keys)
    list_users = sync(AsyncAuth.list_users)
    update_user = sync(AsyncAuth.update_user)


class ApiKeys(SyncResource[AsyncApiKeys]):
    """The sync :class:`AsyncApiKeys`."""

    create = sync(AsyncApiKeys.create)
    list = sync(AsyncApiKeys.list)
    revoke = sync(AsyncApiKeys.revoke)

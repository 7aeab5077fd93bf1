"""Who is calling: principals, local JWT verification, API keys, service credentials.

Access tokens are verified locally with the auth service's public keys (fetched by ``kid`` from
``AuthService.ListPublicKeys`` and cached). API keys are resolved through
``AuthInternalService.VerifyApiKey`` and cached briefly. Revocations (logout, refresh-token reuse,
disabled users, revoked API keys) arrive over auth's revocation feed (``services.kit.revocations``)
and are enforced on every call, cached or not. Internal RPCs require a service token that auth
issues to holders of the mesh's internal secret (``ServiceCredentials``).
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from services.kit.config import ServiceConfig
from services.kit.errors import ServiceError
from services.kit.limits import Limits
from services.kit.revocations import RevocationFollower, RevocationList, Revoked
from services.kit.tokens import TokenError, VerificationKey, decode_token, unverified_kid
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

__all__ = [
    "ApiKeyResolver",
    "Authenticator",
    "KeySource",
    "Principal",
    "PrincipalKind",
    "RemoteKeySource",
    "ServiceCredentials",
    "current_principal",
    "optional_principal",
    "outgoing_metadata",
    "request_id",
]

AUTH_DOMAIN = "viarte.auth"
_MAX_CACHED_TOKENS = 50_000


class PrincipalKind(enum.StrEnum):
    USER = "user"
    API_KEY = "api_key"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    subject: str
    kind: PrincipalKind
    role: str = "user"
    scopes: frozenset[str] = frozenset()
    session_id: str = ""
    email: str = ""
    # The API key that authenticated the call (API_KEY principals): jobs record it (issue 16).
    api_key_id: str = ""
    # Budgets and request limits (issue 16, services/kit/limits.py): the key's and its user's.
    key_limits: Limits = field(default_factory=Limits)
    user_limits: Limits = field(default_factory=Limits)
    # The metadata pair that authenticated the call, forwarded on calls made on the caller's behalf.
    credential: tuple[str, str] = field(default=("", ""), repr=False)

    @property
    def user_id(self) -> str:
        if self.kind is PrincipalKind.SERVICE:
            raise ServiceError.permission_denied("PERMISSION_DENIED", "a user credential is required", domain=AUTH_DOMAIN)
        return self.subject

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_service(self) -> bool:
        return self.kind is PrincipalKind.SERVICE

    def has_scope(self, scope: str) -> bool:
        # User tokens carry every scope; API keys only those granted at creation. The edge
        # interceptor checks each RPC's scope (services/kit/scopes.py); handlers need not.
        return self.kind is not PrincipalKind.API_KEY or scope in self.scopes


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("viarte_principal", default=None)
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("viarte_request_id", default="")


def current_principal() -> Principal:
    """The authenticated caller of the RPC being handled; UNAUTHENTICATED when anonymous."""
    principal = _principal.get()
    if principal is None:
        raise ServiceError.unauthenticated("UNAUTHENTICATED", "credentials required", domain=AUTH_DOMAIN)
    return principal


def optional_principal() -> Principal | None:
    return _principal.get()


def request_id() -> str:
    return _request_id.get()


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata for a call made on behalf of the current caller (credential + request id)."""
    pairs: list[tuple[str, str]] = []
    principal = _principal.get()
    if principal is not None and principal.credential[0]:
        pairs.append(principal.credential)
    if _request_id.get():
        pairs.append(("x-request-id", _request_id.get()))
    return tuple(pairs)


class KeySource(Protocol):
    async def get(self, kid: str) -> VerificationKey | None: ...


class ApiKeyResolver(Protocol):
    async def __call__(self, api_key: str) -> Principal: ...


class RemoteKeySource:
    """Public keys from ``AuthService.ListPublicKeys``, cached by kid; unknown kids refetch (rate limited)."""

    def __init__(self, channel: grpc.aio.Channel, min_refetch_seconds: float = 5.0) -> None:
        self._stub = auth_pb2_grpc.AuthServiceStub(channel)
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at = 0.0
        self._max_age = 300.0
        self._min_refetch = min_refetch_seconds
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> VerificationKey | None:
        key = self._keys.get(kid)
        if key is not None and time.monotonic() - self._fetched_at < self._max_age:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            stale = time.monotonic() - self._fetched_at >= self._max_age
            if (key is None or stale) and time.monotonic() - self._fetched_at >= self._min_refetch:
                await self._refresh()
            return self._keys.get(kid)

    async def _refresh(self) -> None:
        try:
            response = await self._stub.ListPublicKeys(auth_pb2.ListPublicKeysRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            raise ServiceError.unavailable(
                "AUTH_UNAVAILABLE", "cannot fetch signing keys from auth", domain=AUTH_DOMAIN
            ) from exc
        keys = {}
        for k in response.keys:
            not_after = k.not_after.ToSeconds() if k.HasField("not_after") else None
            keys[k.kid] = VerificationKey.from_jwk({"kid": k.kid, "kty": k.kty, "crv": k.crv, "x": k.x}, not_after)
        self._keys = keys
        self._fetched_at = time.monotonic()
        if response.max_age_seconds > 0:
            self._max_age = float(response.max_age_seconds)


def _revoked() -> ServiceError:
    return ServiceError.unauthenticated("TOKEN_REVOKED", "the credential has been revoked", domain=AUTH_DOMAIN)


class _RemoteApiKeys:
    def __init__(
        self, channel: grpc.aio.Channel, credentials: ServiceCredentials, revocations: RevocationList
    ) -> None:
        self._stub = auth_pb2_grpc.AuthInternalServiceStub(channel)
        self._credentials = credentials
        self._revocations = revocations
        # secret → (valid until (monotonic), principal, key id, asked at (wall clock))
        self._cache: dict[str, tuple[float, Principal, str, float]] = {}

    def purge(self, revoked: Revoked) -> None:
        for secret, (_, principal, key_id, _) in list(self._cache.items()):
            if key_id == revoked.api_key_id or principal.subject == revoked.user_id:
                del self._cache[secret]

    async def __call__(self, api_key: str) -> Principal:
        cached = self._cache.get(api_key)
        if cached is not None and cached[0] > time.monotonic():
            if not self._revocations.api_key_revoked(cached[2], cached[1].subject, cached[3]):
                return cached[1]
            del self._cache[api_key]
        asked_at = time.time()
        try:
            answer = await self._stub.VerifyApiKey(
                auth_pb2.VerifyApiKeyRequest(api_key=api_key), metadata=await self._credentials.metadata(), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise ServiceError.unauthenticated("TOKEN_INVALID", "invalid API key", domain=AUTH_DOMAIN) from None
            raise ServiceError.unavailable("AUTH_UNAVAILABLE", "cannot verify API key", domain=AUTH_DOMAIN) from exc
        principal = Principal(
            subject=answer.user.id,
            kind=PrincipalKind.API_KEY,
            role="admin" if answer.user.role == auth_pb2.ROLE_ADMIN else "user",
            scopes=frozenset(answer.scopes),
            email=answer.user.email,
            api_key_id=answer.api_key_id,
            key_limits=Limits.from_proto(answer.key_limits),
            user_limits=Limits.from_proto(answer.user_limits),
            credential=("x-api-key", api_key),
        )
        # A revocation that arrived while this answer was on its way wins over the answer.
        if self._revocations.api_key_revoked(answer.api_key_id, principal.subject, asked_at):
            raise _revoked()
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[api_key] = (
            time.monotonic() + max(answer.max_age_seconds, 0), principal, answer.api_key_id, asked_at
        )
        return principal


class Authenticator:
    """Turns request metadata into a :class:`Principal` (or ``None`` when no credential is sent)."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        key_source: KeySource | None = None,
        api_key_resolver: ApiKeyResolver | None = None,
        channel: grpc.aio.Channel | None = None,
        follow_revocations: bool | None = None,
    ) -> None:
        """``follow_revocations``: subscribe to auth's revocation feed on `start` (default: when the
        keys come from auth, i.e. everywhere but in auth itself, which checks its own tables)."""
        self._config = config
        self._channel = channel
        if follow_revocations is None:
            follow_revocations = key_source is None
        if key_source is None or api_key_resolver is None or follow_revocations:
            from services.kit.channels import insecure_channel

            self._channel = self._channel or insecure_channel(config.auth_address)
        self.revocations = RevocationList()
        self.revocations.on_revoked(self._purge)
        credentials = ServiceCredentials(config, channel=self._channel) if self._channel is not None else None
        self._keys: KeySource = key_source or RemoteKeySource(self._channel)
        self._remote_api_keys: _RemoteApiKeys | None = None
        if api_key_resolver is None:
            assert credentials is not None and self._channel is not None
            self._remote_api_keys = _RemoteApiKeys(self._channel, credentials, self.revocations)
        self._api_keys: ApiKeyResolver = api_key_resolver or self._remote_api_keys  # type: ignore[assignment]
        self.follower: RevocationFollower | None = None
        if follow_revocations:
            assert credentials is not None and self._channel is not None
            self.follower = RevocationFollower(self._channel, credentials.metadata, self.revocations)
        # Verified access tokens → (valid until, principal, kid, issued at). An Ed25519 verify costs
        # ~100 µs; a browser sends the same token on every call until it refreshes it.
        self._verified: dict[str, tuple[float, Principal, str, float]] = {}

    def start(self) -> None:
        """Subscribes to the revocation feed (needs a running event loop; `build_server` calls it)."""
        if self.follower is not None:
            self.follower.start()

    def _purge(self, revoked: Revoked) -> None:
        """Drops cached verifications a revocation hits (the checks on every call refuse them anyway;
        purging keeps the caches from holding dead entries)."""
        for token, (_, principal, _, issued_at) in list(self._verified.items()):
            if principal.session_id == revoked.session_id or (
                principal.subject == revoked.user_id and issued_at <= revoked.revoke_time
            ):
                del self._verified[token]
        if self._remote_api_keys is not None:
            self._remote_api_keys.purge(revoked)

    async def authenticate(self, metadata: Mapping[str, str]) -> Principal | None:
        authorization = metadata.get("authorization", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise ServiceError.unauthenticated("TOKEN_INVALID", "expected a Bearer token", domain=AUTH_DOMAIN)
            return await self.verify_access_token(token.strip())
        api_key = metadata.get("x-api-key", "")
        if api_key:
            return await self._api_keys(api_key)
        return None

    async def verify_access_token(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            valid_until, principal, kid, issued_at = cached
            # The key lookup is a dict hit; it keeps an emergency key retirement immediate.
            key = await self._keys.get(kid)
            now = time.time()
            if now < valid_until and key is not None and (key.not_after is None or now <= key.not_after):
                if self.revocations.token_revoked(principal.subject, principal.session_id, issued_at):
                    raise _revoked()
                return principal
            del self._verified[token]
        principal, valid_until, kid, issued_at = await self._verify_uncached(token)
        if self.revocations.token_revoked(principal.subject, principal.session_id, issued_at):
            raise _revoked()
        if len(self._verified) >= _MAX_CACHED_TOKENS:
            self._verified.clear()
        self._verified[token] = (valid_until, principal, kid, issued_at)
        return principal

    async def _verify_uncached(self, token: str) -> tuple[Principal, float, str, float]:
        try:
            kid = unverified_kid(token)
            key = await self._keys.get(kid)
            if key is None:
                raise TokenError("TOKEN_INVALID", "unknown signing key")
            claims = decode_token(
                token, key, issuer=self._config.jwt_issuer, audience=self._config.jwt_audience
            )
        except TokenError as exc:
            raise ServiceError.unauthenticated(exc.reason, str(exc), domain=AUTH_DOMAIN) from None
        if claims.get("typ") != "access":
            raise ServiceError.unauthenticated("TOKEN_INVALID", "not an access token", domain=AUTH_DOMAIN)
        role = str(claims.get("role", "user"))
        scope = claims.get("scope", "")
        try:
            user_limits = Limits.from_claim(claims.get("lim"))
        except ValueError:
            raise ServiceError.unauthenticated("TOKEN_INVALID", "malformed limits claim", domain=AUTH_DOMAIN) from None
        valid_until = float(claims["exp"])
        if key.not_after is not None:
            valid_until = min(valid_until, key.not_after)
        return Principal(
            subject=str(claims["sub"]),
            kind=PrincipalKind.SERVICE if role == "service" else PrincipalKind.USER,
            role=role,
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            session_id=str(claims.get("sid", "")),
            email=str(claims.get("email", "")),
            user_limits=user_limits,
            credential=("authorization", f"Bearer {token}"),
        ), valid_until, kid, float(claims.get("iat", 0))

    async def close(self) -> None:
        if self.follower is not None:
            await self.follower.close()
        if self._channel is not None:
            await self._channel.close()


TokenFetcher = Callable[[], Awaitable[tuple[str, float]]]


class ServiceCredentials:
    """A service token for internal RPCs, fetched from auth and refreshed a minute before expiry."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        channel: grpc.aio.Channel | None = None,
        fetcher: TokenFetcher | None = None,
    ) -> None:
        self._config = config
        self._channel = channel
        self._fetcher = fetcher
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def metadata(self) -> tuple[tuple[str, str], ...]:
        if time.time() > self._expires - 60:
            async with self._lock:
                if time.time() > self._expires - 60:
                    self._token, self._expires = await (self._fetcher or self._fetch)()
        pairs: list[tuple[str, str]] = [("authorization", f"Bearer {self._token}")]
        if _request_id.get():
            pairs.append(("x-request-id", _request_id.get()))
        return tuple(pairs)

    async def _fetch(self) -> tuple[str, float]:
        if self._channel is None:
            from services.kit.channels import insecure_channel

            self._channel = insecure_channel(self._config.auth_address)
        stub = auth_pb2_grpc.AuthInternalServiceStub(self._channel)
        try:
            answer = await stub.IssueServiceToken(
                auth_pb2.IssueServiceTokenRequest(
                    service=self._config.service_name, secret=self._config.internal_secret.reveal()
                ),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            raise ServiceError.unavailable(
                "AUTH_UNAVAILABLE", "cannot obtain a service token from auth", domain=AUTH_DOMAIN
            ) from exc
        return answer.access_token, float(answer.expire_time.ToSeconds())

"""gRPC handlers of AuthService and AuthInternalService."""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2

from services.auth import credentials
from services.auth.config import AuthConfig
from services.auth.feed import RevocationFeed
from services.auth.keys import KeyStore
from services.auth.limits import check_limits, limits_proto, limits_values
from services.auth.models import ApiKey, User, as_utc, utcnow
from services.auth.passwords import PasswordHasher, PasswordPolicy, normalize_email
from services.auth.reasons import Reason
from services.auth.store import EmailTakenError, RefreshOutcome, Store
from services.auth.throttle import LoginThrottle, client_address, parse_networks
from services.kit.auth import Principal, PrincipalKind, current_principal
from services.kit.db import is_database_down, run_db
from services.kit.errors import FieldViolation, ServiceError, Violations
from services.kit.limits import limits_claim
from services.kit.pagination import PageTokens, page_size
from services.kit.tokens import issue_token
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

__all__ = ["AuthInternalServicer", "AuthServicer", "Issuer", "LocalApiKeyResolver", "client_address", "database"]


def _too_many(message: str, wait: float) -> ServiceError:
    return ServiceError.resource_exhausted(Reason.TOO_MANY_ATTEMPTS, message, retry_after=wait)

_ROLE_TO_PROTO = {"user": auth_pb2.ROLE_USER, "admin": auth_pb2.ROLE_ADMIN}
_PROTO_TO_ROLE = {v: k for k, v in _ROLE_TO_PROTO.items()}
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_INVALID_CREDENTIALS = "invalid email or password"
T = TypeVar("T")


async def database(fn: Callable[..., T], *args: Any) -> T:
    """Database work off the event loop; a database that is down or unreachable is UNAVAILABLE."""
    try:
        return await run_db(fn, *args)
    except Exception as exc:
        if not is_database_down(exc):
            raise
        raise ServiceError.unavailable(
            Reason.DATABASE_UNAVAILABLE, "the identity database is unavailable", retry_after=1.0
        ) from exc


def _ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    value = as_utc(value)
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def user_proto(user: User) -> auth_pb2.User:
    return auth_pb2.User(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=_ROLE_TO_PROTO.get(user.role, auth_pb2.ROLE_UNSPECIFIED),
        disabled=user.disabled,
        create_time=_ts(user.create_time),
        limits=limits_proto(user),
    )


def api_key_proto(key: ApiKey) -> auth_pb2.ApiKey:
    return auth_pb2.ApiKey(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=key.scopes.split(),
        create_time=_ts(key.create_time),
        last_used_time=_ts(key.last_used_time),
        expire_time=_ts(key.expire_time),
        revoked=key.revoke_time is not None,
        limits=limits_proto(key),
    )


@dataclass(frozen=True)
class Issuer:
    """Signs access tokens with the active key of the key store."""

    config: AuthConfig
    keys: KeyStore

    def access_token(self, user: User, session_id: str) -> tuple[str, datetime]:
        ttl = self.config.access_token_ttl_seconds
        claims = {
            "typ": "access",
            "role": user.role,
            "scope": " ".join(credentials.KNOWN_SCOPES),
            "sid": session_id,
            "email": user.email,
        }
        limits = limits_proto(user)
        if any((limits.monthly_credit_budget, limits.creates_per_minute, limits.reads_per_minute,
                limits.max_concurrent_jobs)):
            # The user's budget and limits (issue 16) for the job services to enforce on signed-in
            # sessions without asking auth on every create: as of this token's issue, so an
            # admin's change applies from the user's next refresh (access_token_ttl_seconds).
            claims["lim"] = limits_claim(limits)
        return self._issue(user.id, ttl, claims)

    def service_token(self, service: str) -> tuple[str, datetime]:
        claims = {"typ": "access", "role": "service", "scope": ""}
        return self._issue(f"service:{service}", self.config.service_token_ttl_seconds, claims)

    def _issue(self, subject: str, ttl: int, claims: dict[str, str]) -> tuple[str, datetime]:
        now = utcnow().replace(microsecond=0)
        token = issue_token(
            self.keys.active,
            subject=subject,
            issuer=self.config.jwt_issuer,
            audience=self.config.jwt_audience,
            ttl_seconds=ttl,
            claims=claims,
            now=now.timestamp(),
        )
        return token, now + timedelta(seconds=ttl)


class LocalApiKeyResolver:
    """`services.kit.auth.ApiKeyResolver` for the auth server itself: reads its own table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def __call__(self, api_key: str) -> Principal:
        found = await database(self._store.resolve_api_key, credentials.digest(api_key))
        if found is None:
            raise ServiceError.unauthenticated(Reason.TOKEN_INVALID, "invalid API key")
        key, user = found
        return Principal(
            subject=user.id,
            kind=PrincipalKind.API_KEY,
            role=user.role,
            scopes=frozenset(key.scopes.split()),
            email=user.email,
            credential=("x-api-key", api_key),
        )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        config: AuthConfig,
        store: Store,
        keys: KeyStore,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        feed: RevocationFeed,
        policy: PasswordPolicy | None = None,
    ) -> None:
        self.feed = feed
        self.config = config
        self.trusted = parse_networks(config.trusted_proxies)
        self.store = store
        self.keys = keys
        self.issuer = Issuer(config, keys)
        self.hasher = hasher
        self.throttle = throttle
        self.policy = policy or PasswordPolicy()
        self.page_tokens = PageTokens.for_service(config)

    # -- sign up / sign in ---------------------------------------------------------------------
    async def Register(
        self, request: auth_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RegisterResponse:
        email = normalize_email(request.email)
        if email is None:
            raise ServiceError.invalid_argument(
                Reason.INVALID_EMAIL,
                "invalid email address",
                violations=[FieldViolation("email", "not a valid address")],
            )
        problems = self.policy.problems(request.password, email)
        if problems:
            raise ServiceError.invalid_argument(
                Reason.WEAK_PASSWORD,
                "password " + "; ".join(problems),
                violations=[FieldViolation("password", p) for p in problems],
            )
        address = client_address(context, self.trusted)
        wait = await database(self.throttle.waiting, self.throttle.address_key(address))
        if wait > 0:
            raise _too_many("too many failed attempts from this address", wait)
        display_name = request.display_name.strip()
        v = Violations()
        v.check(len(display_name) <= 200, "display_name", "must be at most 200 characters")
        v.raise_if_any(Reason.INVALID_ARGUMENT)
        password_hash = await run_db(self.hasher.hash, request.password)
        try:
            user = await database(self.store.create_user, email, password_hash, display_name, "user")
        except EmailTakenError:
            # Probing Register for taken emails is enumeration: it counts against the address only
            # (counting it against the account would let anyone lock a victim out).
            await database(self.throttle.charge, self.throttle.address_key(address))
            raise ServiceError.already_exists(
                Reason.EMAIL_TAKEN, "an account with this email exists"
            ) from None
        tokens = await self._open_session(user, address)
        return auth_pb2.RegisterResponse(user=user_proto(user), tokens=tokens)

    async def Login(
        self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LoginResponse:
        address = client_address(context, self.trusted)
        # Malformed emails are throttled and answered like unknown ones (no enumeration either way).
        email = normalize_email(request.email) or request.email.strip().lower()[:320]
        account_key, address_key = self.throttle.login_keys(email, address)
        # Charged before the check, settled on success: concurrent guesses cannot outrun the count.
        wait = await database(self.throttle.attempt, account_key, address_key)
        if wait > 0:
            raise _too_many("too many failed sign-in attempts; try again later", wait)
        user = await self._check_password(email, request.password)
        if user is None:
            raise ServiceError.unauthenticated(Reason.INVALID_CREDENTIALS, _INVALID_CREDENTIALS)
        await database(self.throttle.succeeded, account_key, address_key)
        if user.disabled:
            raise ServiceError.permission_denied(Reason.ACCOUNT_DISABLED, "this account is disabled")
        if self.hasher.needs_rehash(user.password_hash):
            await database(self.store.set_password_hash, user.id, await run_db(self.hasher.hash, request.password))
        tokens = await self._open_session(user, address)
        return auth_pb2.LoginResponse(user=user_proto(user), tokens=tokens)

    async def _check_password(self, email: str, password: str) -> User | None:
        """The user if the password is theirs. An unknown email is checked against a dummy hash, so
        both failures cost one bcrypt round."""
        # No account has a password this long (the policy caps it); don't hash megabytes for nothing.
        if len(password) > self.policy.max_length:
            password = ""
        user = await database(self.store.user_by_email, email)
        ok = await run_db(self.hasher.verify, password, user.password_hash if user else None)
        return user if user is not None and ok and password else None

    async def _open_session(self, user: User, address: str) -> auth_pb2.TokenPair:
        now = utcnow()
        refresh = credentials.new_refresh_token()
        refresh_expire = now + timedelta(seconds=self.config.refresh_token_ttl_seconds)
        session_expire = now + timedelta(seconds=self.config.session_ttl_seconds)
        session = await database(
            self.store.create_session,
            user.id,
            session_expire,
            credentials.digest(refresh),
            min(refresh_expire, session_expire),
            address,
        )
        return self._pair(user, session.id, refresh, min(refresh_expire, session_expire))

    def _pair(
        self, user: User, session_id: str, refresh: str, refresh_expire: datetime
    ) -> auth_pb2.TokenPair:
        access, access_expire = self.issuer.access_token(user, session_id)
        return auth_pb2.TokenPair(
            access_token=access,
            access_token_expire_time=_ts(access_expire),
            refresh_token=refresh,
            refresh_token_expire_time=_ts(refresh_expire),
            token_type="Bearer",
        )

    async def Refresh(
        self, request: auth_pb2.RefreshRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RefreshResponse:
        token = request.refresh_token
        if not token.startswith(credentials.REFRESH_PREFIX) or len(token) > 200:
            raise ServiceError.unauthenticated(Reason.TOKEN_INVALID, "invalid refresh token")
        successor = credentials.new_refresh_token()
        expire = utcnow() + timedelta(seconds=self.config.refresh_token_ttl_seconds)
        result = await database(
            self.store.rotate_refresh,
            credentials.digest(token),
            credentials.digest(successor),
            expire,
            timedelta(seconds=self.config.refresh_retry_grace_seconds),
        )
        if result.outcome in (RefreshOutcome.REUSED, RefreshOutcome.REVOKED):
            self.feed.notify()  # the family was revoked just now (reuse, or a disabled account)
        match result.outcome:
            case RefreshOutcome.OK:
                assert result.user is not None and result.session is not None
                session_expire = as_utc(result.session.expire_time)
                refresh_expire = min(expire, session_expire) if session_expire else expire
                pair = self._pair(result.user, result.session.id, successor, refresh_expire)
                return auth_pb2.RefreshResponse(tokens=pair)
            case RefreshOutcome.EXPIRED:
                raise ServiceError.unauthenticated(Reason.TOKEN_EXPIRED, "refresh token expired")
            case RefreshOutcome.REVOKED:
                raise ServiceError.unauthenticated(Reason.TOKEN_REVOKED, "session revoked")
            case RefreshOutcome.REUSED:
                raise ServiceError.unauthenticated(
                    Reason.REFRESH_TOKEN_REUSED, "refresh token already used; the session has been revoked"
                )
            case _:
                raise ServiceError.unauthenticated(Reason.TOKEN_INVALID, "invalid refresh token")

    # -- the caller ----------------------------------------------------------------------------
    async def _caller(self, *, user_session: bool = False) -> tuple[Principal, User]:
        """The calling user, re-checked against the database (session alive, account enabled).

        `user_session=True` refuses API keys (they cannot manage credentials).
        """
        principal = current_principal()
        if principal.kind is PrincipalKind.SERVICE:
            raise ServiceError.permission_denied(Reason.PERMISSION_DENIED, "a user credential is required")
        if user_session and principal.kind is not PrincipalKind.USER:
            raise ServiceError.permission_denied(
                Reason.PERMISSION_DENIED, "API keys cannot manage credentials"
            )
        if principal.kind is PrincipalKind.USER:
            user = await database(self.store.session_user, principal.session_id, principal.subject)
            if user is None:
                raise ServiceError.unauthenticated(Reason.TOKEN_REVOKED, "session revoked")
        else:
            user = await database(self.store.user, principal.subject)
        if user is None or user.disabled:
            raise ServiceError.unauthenticated(Reason.TOKEN_REVOKED, "account disabled")
        return principal, user

    async def _admin(self) -> User:
        _, user = await self._caller(user_session=True)
        # The role is read from the database, so a demotion takes effect at once.
        if user.role != "admin":
            raise ServiceError.permission_denied(Reason.PERMISSION_DENIED, "admin role required")
        return user

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.LogoutResponse:
        principal, _ = await self._caller(user_session=True)
        await database(self.store.revoke_session, principal.session_id, "logout")
        self.feed.notify()
        return auth_pb2.LogoutResponse()

    async def GetMe(
        self, request: auth_pb2.GetMeRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.GetMeResponse:
        principal, user = await self._caller()
        scopes = (
            sorted(principal.scopes)
            if principal.kind is PrincipalKind.API_KEY
            else list(credentials.KNOWN_SCOPES)
        )
        return auth_pb2.GetMeResponse(user=user_proto(user), scopes=scopes)

    async def ListPublicKeys(
        self, request: auth_pb2.ListPublicKeysRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListPublicKeysResponse:
        # From the table, not this replica's memory: a verifier that met a new kid from another
        # replica asks whichever replica the balancer picks, and must find it.
        await database(self.keys.reload)
        keys = []
        for key in self.keys.verification_keys():
            jwk = key.jwk()
            proto = auth_pb2.PublicKey(
                kid=key.kid, kty=jwk["kty"], alg=jwk["alg"], crv=jwk["crv"], x=jwk["x"]
            )
            if key.not_after is not None:
                proto.not_after.FromSeconds(int(key.not_after))
            keys.append(proto)
        return auth_pb2.ListPublicKeysResponse(
            keys=keys, max_age_seconds=self.config.public_keys_max_age_seconds
        )

    # -- API keys ------------------------------------------------------------------------------
    async def CreateApiKey(
        self, request: auth_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.CreateApiKeyResponse:
        _, user = await self._caller(user_session=True)
        name = request.name.strip()
        scopes = list(dict.fromkeys(request.scopes))
        v = Violations()
        v.check(0 < len(name) <= 100, "name", "must be 1 to 100 characters")
        v.check(bool(scopes), "scopes", "at least one scope is required")
        v.check(len(request.scopes) <= 100, "scopes", "at most 100 scopes")
        # Paths index the request as sent; the name is not echoed (it may be huge), the choices are.
        unknown = [i for i, scope in enumerate(request.scopes[:100]) if scope not in credentials.KNOWN_SCOPES]
        for i in unknown[:10]:
            v.add(f"scopes[{i}]", "unknown scope; one of: " + ", ".join(credentials.KNOWN_SCOPES))
        check_limits(v, request.limits, "limits")
        v.check(
            0 <= request.ttl_seconds <= 10 * 365 * 86_400, "ttl_seconds", "must be between 0 and 10 years"
        )
        v.raise_if_any(Reason.INVALID_ARGUMENT)
        secret = credentials.new_api_key()
        expire = utcnow() + timedelta(seconds=request.ttl_seconds) if request.ttl_seconds else None
        key = await database(
            self.store.create_api_key,
            user.id,
            name,
            credentials.display_prefix(secret),
            credentials.digest(secret),
            scopes,
            expire,
            limits_values(request.limits),
        )
        return auth_pb2.CreateApiKeyResponse(api_key=api_key_proto(key), secret=secret)

    async def ListApiKeys(
        self, request: auth_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListApiKeysResponse:
        _, user = await self._caller(user_session=True)
        keys = await database(self.store.list_api_keys, user.id)
        return auth_pb2.ListApiKeysResponse(api_keys=[api_key_proto(k) for k in keys])

    async def RevokeApiKey(
        self, request: auth_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RevokeApiKeyResponse:
        _, user = await self._caller(user_session=True)
        if not await database(self.store.revoke_api_key, user.id, request.id):
            raise ServiceError.not_found(
                Reason.API_KEY_NOT_FOUND, "API key not found", metadata={"id": request.id[:100]}
            )
        self.feed.notify()
        return auth_pb2.RevokeApiKeyResponse()

    # -- admin ---------------------------------------------------------------------------------
    async def ListUsers(
        self, request: auth_pb2.ListUsersRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListUsersResponse:
        await self._admin()
        size = page_size(request.page_size)
        cursor = self.page_tokens.decode(request.page_token, {"list": "users"}, {"t": datetime, "id": str})
        after = (cursor["t"], cursor["id"]) if cursor is not None else None
        users = await database(self.store.list_users, after, size + 1)
        next_token = ""
        if len(users) > size:
            users = users[:size]
            last = users[-1]
            created = as_utc(last.create_time)
            assert created is not None
            next_token = self.page_tokens.encode({"t": created, "id": last.id}, {"list": "users"})
        return auth_pb2.ListUsersResponse(users=[user_proto(u) for u in users], next_page_token=next_token)

    async def UpdateUser(
        self, request: auth_pb2.UpdateUserRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.UpdateUserResponse:
        admin = await self._admin()
        role = _PROTO_TO_ROLE.get(request.role) if request.role != auth_pb2.ROLE_UNSPECIFIED else None
        v = Violations()
        v.check(request.role == auth_pb2.ROLE_UNSPECIFIED or role is not None, "role", "unknown role")
        # An admin locking themselves out would leave nobody to undo it.
        v.check(
            request.id != admin.id or ((role in (None, "admin")) and not request.disabled),
            "id",
            "admins cannot demote or disable themselves",
        )
        check_limits(v, request.limits, "limits")
        v.raise_if_any(Reason.INVALID_ARGUMENT)
        limits = limits_values(request.limits) if request.HasField("limits") else None
        user = await database(self.store.update_user, request.id, role, request.disabled, limits)
        self.feed.notify()
        if user is None:
            raise ServiceError.not_found(Reason.USER_NOT_FOUND, "user not found", metadata={"id": request.id})
        return auth_pb2.UpdateUserResponse(user=user_proto(user))


class AuthInternalServicer(auth_pb2_grpc.AuthInternalServiceServicer):  # type: ignore[misc]
    def __init__(
        self, config: AuthConfig, store: Store, keys: KeyStore, throttle: LoginThrottle, feed: RevocationFeed
    ) -> None:
        self.feed = feed
        self.config = config
        self.trusted = parse_networks(config.trusted_proxies)
        self.store = store
        self.issuer = Issuer(config, keys)
        self.throttle = throttle

    async def VerifyApiKey(
        self, request: auth_pb2.VerifyApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.VerifyApiKeyResponse:
        key = request.api_key
        found = None
        if key.startswith(credentials.API_KEY_PREFIX) and len(key) <= 200:
            found = await database(self.store.resolve_api_key, credentials.digest(key))
        if found is None:
            raise ServiceError.unauthenticated(Reason.TOKEN_INVALID, "invalid API key")
        api_key, user = found
        return auth_pb2.VerifyApiKeyResponse(
            user=user_proto(user),
            api_key_id=api_key.id,
            scopes=api_key.scopes.split(),
            max_age_seconds=self.config.api_key_max_age_seconds,
            key_limits=limits_proto(api_key),
            user_limits=limits_proto(user),
        )

    async def IssueServiceToken(
        self, request: auth_pb2.IssueServiceTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.IssueServiceTokenResponse:
        # The secret is compared first and a correct one always passes: the throttle only slows
        # down wrong secrets, so anonymous callers sharing the services' address (every process on
        # one loopback host, or behind one NAT) cannot make the real services' token fetches fail.
        # It still bounds the rate of wrong guesses per client address (never per service name);
        # the secret itself must be long and random for guessing to be hopeless at any rate.
        expected = self.config.internal_secret.reveal().encode("utf-8")
        presented = request.secret.encode("utf-8")
        if not expected or not hmac.compare_digest(presented, expected):
            key = self.throttle.service_key(client_address(context, self.trusted))
            wait = await database(self.throttle.waiting, key)
            if wait > 0:
                raise _too_many("too many failed attempts", wait)
            await database(self.throttle.charge, key)
            raise ServiceError.unauthenticated(Reason.INVALID_CREDENTIALS, "invalid service credentials")
        if not _SERVICE_NAME.match(request.service):
            raise ServiceError.invalid_argument(
                Reason.INVALID_ARGUMENT,
                "invalid service name",
                violations=[FieldViolation("service", "must match [a-z][a-z0-9-]*")],
            )
        token, expire = self.issuer.service_token(request.service)
        return auth_pb2.IssueServiceTokenResponse(access_token=token, expire_time=_ts(expire))

    async def WatchRevocations(
        self, request: auth_pb2.WatchRevocationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[auth_pb2.WatchRevocationsResponse]:
        if request.after_sequence < 0:
            raise ServiceError.invalid_argument(
                Reason.INVALID_ARGUMENT,
                "after_sequence must not be negative",
                violations=[FieldViolation("after_sequence", "must be >= 0")],
            )
        async for response in self.feed.stream(request.after_sequence):
            yield response

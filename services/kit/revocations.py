"""Revocations pushed by auth (`AuthInternalService.WatchRevocations`), as every service sees them.

`RevocationList` holds what is revoked (sessions, users up to a time, API keys) until nothing it
names can be valid anyway; the `Authenticator` consults it on every call, cached or not, and purges
its caches when an entry arrives. `RevocationFollower` keeps the subscription open: it starts with
the service, resumes from the last sequence it applied after any disconnect (auth restart, network),
with capped exponential backoff. While it is disconnected nothing new arrives, so a revocation made
meanwhile is enforced only from the reconnect on (replay) or when the credential lapses by itself:
access tokens at their expiry (15 min), API keys when the verifier's cache entry does (30 s), exactly
as without the feed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from services.kit.logs import get_logger
from viarte.auth.v1 import auth_pb2, auth_pb2_grpc

__all__ = ["RevocationFollower", "RevocationList", "Revoked"]

_log = get_logger("viarte.revocations")


@dataclass(frozen=True)
class Revoked:
    """What one feed entry revokes (exactly one of the three ids is set)."""

    session_id: str = ""
    user_id: str = ""
    api_key_id: str = ""
    # Auth's clock: user tokens issued up to this time are revoked.
    revoke_time: float = 0.0
    # This process's clock when the entry arrived: API-key answers fetched before it are stale.
    arrived: float = 0.0


class RevocationList:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.cursor = 0
        self._sessions: dict[str, float] = {}  # session id → forget after
        self._users: dict[str, tuple[float, float, float]] = {}  # user id → (revoke time, arrived, forget after)
        self._api_keys: dict[str, float] = {}  # key id → forget after
        self._listeners: list[Callable[[Revoked], None]] = []

    def on_revoked(self, listener: Callable[[Revoked], None]) -> None:
        self._listeners.append(listener)

    def reset(self) -> None:
        """The feed started over (a new identity database): keep what we know, re-read from 0."""
        self.cursor = 0

    def apply(self, entry: auth_pb2.Revocation) -> None:
        now = self._clock()
        forget = entry.expire_time.ToNanoseconds() / 1e9 if entry.HasField("expire_time") else now + 3600
        revoke_time = entry.revoke_time.ToNanoseconds() / 1e9
        target = entry.WhichOneof("target")
        if target == "session_id":
            self._sessions[entry.session_id] = forget
            revoked = Revoked(session_id=entry.session_id, revoke_time=revoke_time, arrived=now)
        elif target == "user_id":
            previous = self._users.get(entry.user_id)
            if previous is None or previous[0] <= revoke_time:
                self._users[entry.user_id] = (revoke_time, now, forget)
            revoked = Revoked(user_id=entry.user_id, revoke_time=revoke_time, arrived=now)
        elif target == "api_key_id":
            self._api_keys[entry.api_key_id] = forget
            revoked = Revoked(api_key_id=entry.api_key_id, revoke_time=revoke_time, arrived=now)
        else:  # a kind this build does not know: nothing to enforce, but move the cursor past it
            revoked = None
        self.cursor = max(self.cursor, entry.sequence)
        self._prune(now)
        if revoked is not None:
            for listener in self._listeners:
                listener(revoked)

    def token_revoked(self, user_id: str, session_id: str, issued_at: float) -> bool:
        """An access token of this user/session issued at `issued_at` (auth's clock) is revoked."""
        if session_id and session_id in self._sessions:
            return True
        user = self._users.get(user_id)
        # `iat` has whole seconds: a token from the second of the revocation counts as revoked.
        return user is not None and issued_at <= user[0]

    def api_key_revoked(self, key_id: str, user_id: str, verified_at: float) -> bool:
        """An API-key answer fetched at `verified_at` (this process's clock) is no longer good."""
        if key_id in self._api_keys:
            return True
        user = self._users.get(user_id)
        return user is not None and verified_at <= user[1]

    def _prune(self, now: float) -> None:
        for table in (self._sessions, self._api_keys):
            for key in [k for k, forget in table.items() if forget < now]:
                del table[key]
        for key in [k for k, v in self._users.items() if v[2] < now]:
            del self._users[key]


Metadata = Callable[[], Awaitable[tuple[tuple[str, str], ...]]]


class RevocationFollower:
    """Keeps `WatchRevocations` open and feeds a `RevocationList`; reconnects with backoff."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        metadata: Metadata,
        revocations: RevocationList,
        *,
        min_backoff: float = 0.2,
        max_backoff: float = 2.0,
    ) -> None:
        self._stub = auth_pb2_grpc.AuthInternalServiceStub(channel)
        self._metadata = metadata
        self._list = revocations
        self._min, self._max = min_backoff, max_backoff
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        # How many times the feed caught up (1 after the first connect; +1 per reconnect).
        self.connects = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="revocation-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        delay = self._min
        while True:
            try:
                await self._follow()
                problem = "the feed ended"
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                problem = f"{exc.code().name}: {exc.details()}"
            except Exception as exc:  # e.g. no service token while auth is down
                problem = f"{type(exc).__name__}: {exc}"
            if self.connected:
                delay = self._min
                _log.warning("revocations.disconnected", problem=problem, cursor=self._list.cursor)
            self.connected = False
            # Jitter keeps a fleet of services from reconnecting to a restarted auth in lockstep.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._max)

    async def _follow(self) -> None:
        call = self._stub.WatchRevocations(
            auth_pb2.WatchRevocationsRequest(after_sequence=self._list.cursor), metadata=await self._metadata()
        )
        async for response in call:
            if response.reset:
                self._list.reset()
            for entry in response.revocations:
                self._list.apply(entry)
            if response.caught_up and not self.connected:
                self.connected = True
                self.connects += 1
                _log.info("revocations.connected", cursor=self._list.cursor, connects=self.connects)

"""Credentials the SDK attaches to calls: an API key, or a user's token pair refreshed before expiry.

Access tokens are short-lived JWTs; the refresh token rotates on every use and the auth service
revokes the whole session when a rotated one is presented twice (outside the short retry grace
for a lost answer, which the refresher's single retry relies on). So refreshing happens under one
lock, at most once per token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from viarte.errors import ClientError

__all__ = ["ApiKeyCredentials", "TokenCredentials", "Tokens"]

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Tokens:
    """A token pair with absolute expiry times (Unix seconds)."""

    access_token: str
    access_expires_at: float
    refresh_token: str = ""
    refresh_expires_at: float = 0.0

    @classmethod
    def from_proto(cls, pair: Any) -> Tokens:
        """From a ``viarte.auth.v1.TokenPair``."""
        return cls(
            access_token=pair.access_token,
            access_expires_at=pair.access_token_expire_time.ToNanoseconds() / 1e9,
            refresh_token=pair.refresh_token,
            refresh_expires_at=pair.refresh_token_expire_time.ToNanoseconds() / 1e9,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokens:
        return cls(**{k: data[k] for k in ("access_token", "access_expires_at", "refresh_token", "refresh_expires_at") if k in data})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def access_valid(self, skew: float = 0.0, now: float | None = None) -> bool:
        return (now or time.time()) + skew < self.access_expires_at

    def refresh_valid(self, now: float | None = None) -> bool:
        return bool(self.refresh_token) and (now or time.time()) < self.refresh_expires_at


class ApiKeyCredentials:
    """A partner backend's API key, sent as ``x-api-key``."""

    def __init__(self, api_key: str) -> None:
        if not api_key:
            raise ClientError("empty API key")
        self._md: Metadata = (("x-api-key", api_key),)

    async def metadata(self) -> Metadata:
        return self._md

    async def refresh(self, rejected: Metadata) -> bool:
        return False

    def __repr__(self) -> str:
        return "ApiKeyCredentials('***')"


Refresher = Callable[[str], Awaitable[Tokens]]


class TokenCredentials:
    """A user's session. The access token is refreshed ``skew`` seconds before it expires."""

    def __init__(
        self,
        tokens: Tokens,
        *,
        refresher: Refresher | None = None,
        on_change: Callable[[Tokens], None] | None = None,
        skew: float = 30.0,
    ) -> None:
        self._tokens = tokens
        self._refresher = refresher
        self._on_change = on_change
        self._skew = skew
        self._lock: asyncio.Lock | None = None

    @property
    def tokens(self) -> Tokens:
        return self._tokens

    def bind(self, refresher: Refresher) -> None:
        """Set by the client, which knows how to reach the auth service."""
        self._refresher = refresher

    def set_tokens(self, tokens: Tokens) -> None:
        self._tokens = tokens
        if self._on_change is not None:
            self._on_change(tokens)

    async def metadata(self) -> Metadata:
        if not self._tokens.access_valid(self._skew) and self._tokens.refresh_valid():
            await self._refresh_if_still(self._tokens.access_token)
        return (("authorization", f"Bearer {self._tokens.access_token}"),)

    async def refresh(self, rejected: Metadata) -> bool:
        sent = next((v.removeprefix("Bearer ") for k, v in rejected if k == "authorization"), "")
        if not self._tokens.refresh_valid():
            return False
        return await self._refresh_if_still(sent)

    async def _refresh_if_still(self, stale_access_token: str) -> bool:
        if self._refresher is None:
            return False
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # Another task refreshed while we waited: its new token is the answer (a second
            # refresh would present a rotated refresh token and revoke the session).
            if self._tokens.access_token != stale_access_token:
                return True
            self.set_tokens(await self._refresher(self._tokens.refresh_token))
            return True

    def __repr__(self) -> str:
        return f"TokenCredentials(expires_at={self._tokens.access_expires_at:.0f})"

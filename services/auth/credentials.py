"""Opaque credentials: refresh tokens and API keys (random secrets, stored as SHA-256).

SHA-256 (not bcrypt) is the right hash here: the secrets carry 256 bits of entropy, so there is
nothing to brute-force, and a fast hash allows an indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from viarte.scopes import SCOPES

__all__ = [
    "API_KEY_PREFIX",
    "KNOWN_SCOPES",
    "REFRESH_PREFIX",
    "digest",
    "digests_equal",
    "display_prefix",
    "new_api_key",
    "new_refresh_token",
]

REFRESH_PREFIX = "rt_"
API_KEY_PREFIX = "vk_"
# The grantable scopes: one vocabulary (viarte/scopes.py), enforced per RPC by services/kit/scopes.py.
KNOWN_SCOPES: tuple[str, ...] = tuple(SCOPES)


def _new(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def new_refresh_token() -> str:
    return _new(REFRESH_PREFIX)


def new_api_key() -> str:
    return _new(API_KEY_PREFIX)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two stored digests."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def display_prefix(secret: str) -> str:
    """The recognisable head of a key ("vk_3f9a"), safe to show and log."""
    return secret[: len(API_KEY_PREFIX) + 4]

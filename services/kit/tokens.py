"""Ed25519 (EdDSA) JWT primitives. Auth signs with them; every service verifies with them.

Verification pins the algorithm to the key's own (never the token header's), so ``alg: none`` and
HS256-with-the-public-key confusion are refused.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["SigningKey", "TokenError", "VerificationKey", "decode_token", "issue_token", "unverified_kid"]

ALGORITHM = "EdDSA"


class TokenError(Exception):
    """A token that must be refused; ``reason`` is an auth ErrorInfo reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    public_key: Ed25519PublicKey
    # Unix time after which tokens signed by this key are refused; None = no limit.
    not_after: float | None = None

    def jwk(self) -> dict[str, str]:
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kid": self.kid, "kty": "OKP", "alg": ALGORITHM, "crv": "Ed25519", "x": _b64url(raw)}

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, str], not_after: float | None = None) -> VerificationKey:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ValueError(f"unsupported key type {jwk.get('kty')}/{jwk.get('crv')}")
        public = Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))
        return cls(kid=jwk["kid"], public_key=public, not_after=not_after)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(kid=secrets.token_hex(8), private_key=Ed25519PrivateKey.generate())

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @classmethod
    def from_pem(cls, kid: str, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(kid=kid, private_key=key)

    def verification_key(self, not_after: float | None = None) -> VerificationKey:
        return VerificationKey(self.kid, self.private_key.public_key(), not_after)


def issue_token(
    key: SigningKey,
    *,
    subject: str,
    issuer: str,
    audience: str,
    ttl_seconds: float,
    claims: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    payload: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl_seconds),
        "jti": uuid.uuid4().hex,
        **(claims or {}),
    }
    return jwt.encode(payload, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"})


def unverified_kid(token: str) -> str:
    """The ``kid`` header, for key lookup before verification; refuses foreign algorithms early."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError("TOKEN_INVALID", "malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise TokenError("TOKEN_INVALID", "unsupported token algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("TOKEN_INVALID", "token has no key id")
    return kid


def decode_token(
    token: str,
    key: VerificationKey,
    *,
    issuer: str,
    audience: str,
    leeway_seconds: float = 5.0,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify signature, issuer, audience, exp, nbf and iat; return the claims."""
    current = time.time() if now is None else now
    if key.not_after is not None and current > key.not_after:
        raise TokenError("TOKEN_INVALID", "token signed by a retired key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway_seconds,
            options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("TOKEN_EXPIRED", "token expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenError("TOKEN_INVALID", "token not yet valid") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("TOKEN_INVALID", "invalid token") from exc
    return claims

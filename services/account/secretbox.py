"""Webhook secrets: generated as Standard Webhooks `whsec_` secrets, stored encrypted.

Signing needs the secret itself, so it cannot be stored hashed like an API key. It is sealed with
AES-256-GCM under a key every replica derives from configuration (``webhook_secret_key``, or
``internal_secret`` when that is empty), with the endpoint id as associated data, so a sealed value
copied onto another endpoint's row does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.account.config import AccountConfig

__all__ = ["SECRET_PREFIX", "SecretBox", "new_secret"]

SECRET_PREFIX = "whsec_"
_LABEL = b"viarte-account-webhook-secrets-v1"


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes (the Standard Webhooks format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def for_config(cls, config: AccountConfig) -> SecretBox:
        configured = config.webhook_secret_key.reveal()
        if configured:
            key = hashlib.sha256(_LABEL + configured.encode("utf-8")).digest()
        else:
            key = hmac.new(config.internal_secret.reveal().encode("utf-8"), _LABEL, hashlib.sha256).digest()
        return cls(key)

    def seal(self, secret: str, endpoint_id: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), endpoint_id.encode("utf-8"))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, box: str, endpoint_id: str) -> str:
        raw = base64.b64decode(box)
        return self._aead.decrypt(raw[:12], raw[12:], endpoint_id.encode("utf-8")).decode("utf-8")

"""Opaque page tokens (AIP-158): signed, bound to the filters of the request that produced them.

A token is ``base64url(json{"c": cursor, "f": filter fingerprint}) "." base64url(HMAC-SHA256)``.
The HMAC key is derived per service from the config's ``internal_secret`` (already shared by
every replica of the mesh), so a token keeps working across restarts and replicas, a token of
one service is refused by another, and a client cannot forge a cursor. The cursor's fields are
still checked against a declared schema (types, int64 range, lengths) because a token must never
reach a query with values the database cannot hold. Every failure is INVALID_ARGUMENT
``INVALID_PAGE_TOKEN`` on the field ``page_token``; rotating ``internal_secret`` invalidates the
outstanding tokens (clients start their listing again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.kit.config import ServiceConfig
from services.kit.errors import FieldViolation, ServiceError

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "PageTokens", "page_size"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Far above any real token (a cursor is a timestamp and an id); refuses junk before decoding it.
MAX_TOKEN_CHARS = 1024
_MAX_CURSOR_STRING = 256
# Both SQLite and PostgreSQL store integers as signed 64 bits: larger values overflow the query.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_KEY_LABEL = b"viarte page token v1\x00"


def page_size(requested: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if requested < 0:
        raise ServiceError.invalid_argument(
            "INVALID_ARGUMENT", "page_size must not be negative",
            violations=(FieldViolation("page_size", "must not be negative"),),
        )
    return min(requested or default, maximum)


def _fingerprint(filters: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(description: str) -> ServiceError:
    return ServiceError.invalid_argument(
        "INVALID_PAGE_TOKEN", f"invalid page_token: {description}",
        violations=(FieldViolation("page_token", description),),
    )


class PageTokens:
    """Signs and verifies the page tokens of one service.

    Cursor schemas map each cursor key to ``int`` (an int64), ``str`` (at most 256 characters)
    or ``datetime`` (stored as ISO 8601, returned parsed)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_service(cls, config: ServiceConfig) -> PageTokens:
        """The key every replica of ``config.service_name`` derives from the shared secret."""
        secret = config.internal_secret.reveal().encode("utf-8")
        return cls(hmac.new(secret, _KEY_LABEL + config.service_name.encode("utf-8"), hashlib.sha256).digest())

    @classmethod
    def ephemeral(cls) -> PageTokens:
        """A random key: tokens valid only in this process (unit tests of components that are
        built without a config; servers always pass ``for_service(config)``)."""
        return cls(os.urandom(32))

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, cursor: Mapping[str, Any], filters: Mapping[str, Any]) -> str:
        values = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in cursor.items()}
        payload = json.dumps({"c": values, "f": _fingerprint(filters)}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(
        self, token: str, filters: Mapping[str, Any], schema: Mapping[str, type]
    ) -> dict[str, Any] | None:
        """The cursor of ``token`` checked against ``schema``; None for an empty token;
        INVALID_ARGUMENT INVALID_PAGE_TOKEN (field ``page_token``) for anything else."""
        if not token:
            return None
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise _invalid("malformed token")
        body, signature = token.split(".")
        try:
            payload, mac = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            raise _invalid("malformed token") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise _invalid("not a token issued by this service")
        try:
            data = json.loads(payload)
        except ValueError:
            raise _invalid("malformed token") from None
        if not isinstance(data, dict) or not isinstance(data.get("c"), dict) or data.get("f") != _fingerprint(filters):
            raise _invalid("does not match the request's filters")
        return _check_cursor(data["c"], schema)


def _check_cursor(cursor: dict[str, Any], schema: Mapping[str, type]) -> dict[str, Any]:
    if set(cursor) != set(schema):
        raise _invalid("malformed cursor")
    out: dict[str, Any] = {}
    for key, kind in schema.items():
        value = cursor[key]
        if kind is int:
            ok = type(value) is int and INT64_MIN <= value <= INT64_MAX
        elif kind is str:
            ok = isinstance(value, str) and 0 < len(value) <= _MAX_CURSOR_STRING
        elif kind is datetime:
            ok = isinstance(value, str) and len(value) <= 64
            if ok:
                try:
                    value = datetime.fromisoformat(value)
                except ValueError:
                    ok = False
        else:  # pragma: no cover - a programming error in the caller's schema
            raise TypeError(f"unsupported cursor type {kind!r}")
        if not ok:
            raise _invalid("malformed cursor")
        out[key] = value
    return out

"""Opaque page tokens (AIP-158) bound to the filters of the request that produced them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from services.kit.errors import ServiceError

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "decode_page_token", "encode_page_token", "page_size"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if requested < 0:
        raise ServiceError.invalid_argument("INVALID_ARGUMENT", "page_size must not be negative")
    return min(requested or default, maximum)


def _fingerprint(filters: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_page_token(cursor: Mapping[str, Any], filters: Mapping[str, Any]) -> str:
    payload = json.dumps({"c": cursor, "f": _fingerprint(filters)}, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_page_token(token: str, filters: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cursor of ``token``; None for an empty token; INVALID_ARGUMENT for a foreign one."""
    if not token:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        cursor, fingerprint = payload["c"], payload["f"]
    except (ValueError, KeyError, TypeError):
        raise ServiceError.invalid_argument("INVALID_PAGE_TOKEN", "malformed page_token") from None
    if fingerprint != _fingerprint(filters) or not isinstance(cursor, dict):
        raise ServiceError.invalid_argument("INVALID_PAGE_TOKEN", "page_token does not match the request's filters")
    return cursor

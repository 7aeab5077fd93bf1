"""Webhook URL validation: http(s), bounded length, and (unless allowed) public addresses only.

The host is resolved and every address it resolves to must be global: a name pointing at
loopback, a private network, link-local (cloud metadata at 169.254.169.254), multicast or a
reserved range would let a caller make the service probe its own network. The dispatcher checks
again before every attempt, because DNS answers change after registration.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from services.account.reasons import Reason
from services.kit.errors import FieldViolation, ServiceError

__all__ = ["UrlRefused", "check_destination", "validate_url"]


class UrlRefused(ValueError):
    """The URL may not receive webhooks; the message says why (safe to show the caller)."""


def _parse(url: str, max_length: int) -> tuple[str, int]:
    if not url:
        raise UrlRefused("is required")
    if len(url) > max_length:
        raise UrlRefused(f"must be at most {max_length} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("must use http or https")
    if not parts.hostname:
        raise UrlRefused("must name a host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("must not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _refused_address(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attribute, what in (
        ("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_private", "private"),
        ("is_multicast", "multicast"), ("is_unspecified", "unspecified"), ("is_reserved", "reserved"),
    ):  # fmt: skip
        if getattr(ip, attribute):
            return what
    return None if ip.is_global else "non-public"


async def check_destination(url: str, *, max_length: int, allow_private: bool, dns_seconds: float = 5.0) -> None:
    """Raises :class:`UrlRefused` unless ``url`` may receive webhooks (resolving its host)."""
    host, port = _parse(url, max_length)
    if allow_private:
        return
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), dns_seconds
        )
    except (OSError, TimeoutError):
        raise UrlRefused(f"host {host!r} does not resolve") from None
    for info in infos:
        what = _refused_address(str(info[4][0]))
        if what is not None:
            raise UrlRefused(f"resolves to a {what} address ({info[4][0]})")


async def validate_url(url: str, *, max_length: int, allow_private: bool) -> None:
    """``check_destination`` as INVALID_ARGUMENT ``INVALID_WEBHOOK_URL`` on field ``url``."""
    try:
        await check_destination(url, max_length=max_length, allow_private=allow_private)
    except UrlRefused as exc:
        raise ServiceError.invalid_argument(
            Reason.INVALID_WEBHOOK_URL, f"webhook url {exc}", violations=(FieldViolation("url", str(exc)),)
        ) from None

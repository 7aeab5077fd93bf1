"""Verifying the studio's webhooks in a partner's receiver (Standard Webhooks, HMAC-SHA256).

    from viarte import webhooks

    event = webhooks.verify(request.body, request.headers, "whsec_...")   # raises on a bad signature
    if event["type"] == "job.succeeded":
        print(event["data"]["job_id"], event["data"]["cost"]["credits"])

``body`` must be the raw bytes as received (re-serialised JSON does not verify). During a secret
rotation the studio signs with the old and the new secret, so a receiver holding either verifies.
Messages older or newer than 5 minutes are refused (replay protection); deduplicate retries by
the ``webhook-id`` header, which stays the same across attempts of one event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from viarte.errors import ClientError

__all__ = ["EVENT_TYPES", "InvalidWebhook", "verify"]

EVENT_TYPES = ("job.succeeded", "job.failed", "job.cancelled")


class InvalidWebhook(ClientError):
    """The body and headers do not carry a valid signature by the secret (or are too old/new)."""


def verify(body: bytes | str, headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """The event (parsed JSON) when ``headers`` hold a valid signature of ``body`` by ``secret``
    (a ``whsec_`` secret); raises :class:`InvalidWebhook` otherwise."""
    try:
        event = Webhook(secret).verify(body, dict(headers.items()))
    except WebhookVerificationError as exc:
        raise InvalidWebhook(f"invalid webhook: {exc}") from None
    except ValueError as exc:  # malformed base64 in the secret or the signature header
        raise InvalidWebhook(f"invalid webhook: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidWebhook("invalid webhook: the body is not a JSON object")
    return event

"""ErrorInfo reasons of the account service (domain "viarte.account"), as listed in account.proto."""

from __future__ import annotations

import enum

__all__ = ["Reason"]


class Reason(enum.StrEnum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    INVALID_PERIOD = "INVALID_PERIOD"
    INVALID_WEBHOOK_URL = "INVALID_WEBHOOK_URL"
    WEBHOOK_NOT_FOUND = "WEBHOOK_NOT_FOUND"
    DELIVERY_NOT_FOUND = "DELIVERY_NOT_FOUND"
    WEBHOOK_DISABLED = "WEBHOOK_DISABLED"
    TOO_MANY_WEBHOOKS = "TOO_MANY_WEBHOOKS"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    # Budgets and limits (issue 16): a create over the monthly budget; over a rate or the cap.
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"

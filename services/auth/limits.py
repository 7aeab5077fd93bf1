"""Budgets and request limits (issue 16) as auth stores them: four columns on ``auth_api_key`` (the
key's own) and on ``auth_user`` (the user's over all of their keys, set by admins). Auth only stores
and hands them out (VerifyApiKey); the job services enforce them through the account service."""

from __future__ import annotations

from typing import Any

from services.kit.errors import Violations
from viarte.type.v1 import limits_pb2

__all__ = ["COLUMNS", "check_limits", "limits_proto", "limits_values"]

# proto field → column (the same names on both tables).
COLUMNS = {
    "monthly_credit_budget": "limit_monthly_credits",
    "creates_per_minute": "limit_creates_per_minute",
    "reads_per_minute": "limit_reads_per_minute",
    "max_concurrent_jobs": "limit_concurrent_jobs",
}
# int32 fields on the wire; the budget is int64.
_MAX = {"monthly_credit_budget": 2**62, "creates_per_minute": 1_000_000, "reads_per_minute": 1_000_000,
        "max_concurrent_jobs": 1_000_000}  # fmt: skip


def limits_proto(row: Any) -> limits_pb2.Limits:
    return limits_pb2.Limits(**{f: int(getattr(row, c) or 0) for f, c in COLUMNS.items()})


def limits_values(limits: limits_pb2.Limits) -> dict[str, int]:
    """The column values of ``limits`` (validated first with ``check_limits``)."""
    return {c: int(getattr(limits, f)) for f, c in COLUMNS.items()}


def check_limits(v: Violations, limits: limits_pb2.Limits, path: str) -> None:
    for f in COLUMNS:
        value = getattr(limits, f)
        v.check(0 <= value <= _MAX[f], f"{path}.{f}", f"must be within 0..{_MAX[f]} (0 = no limit)")

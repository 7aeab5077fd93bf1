"""Helpers shared by the account servicers: database calls, time conversions, the caller."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import timestamp_pb2
from sqlalchemy import exc as sa_exc

from services.account.models import as_utc
from services.account.reasons import Reason
from services.kit.auth import current_principal
from services.kit.db import run_db
from services.kit.errors import ServiceError

__all__ = ["caller", "database", "from_ts", "to_ts"]

T = TypeVar("T")


async def database(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Database work off the event loop; a database that is down or unreachable is UNAVAILABLE."""
    try:
        return await run_db(fn, *args, **kwargs)
    except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
        raise ServiceError.unavailable(
            Reason.DATABASE_UNAVAILABLE, "the account database is unavailable", retry_after=1.0
        ) from exc


def caller() -> str:
    # API-key scopes were checked by the edge interceptor (services/kit/scopes.py) before this runs.
    return current_principal().user_id


def to_ts(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(as_utc(value))
    return stamp


def from_ts(stamp: timestamp_pb2.Timestamp) -> datetime:
    value: datetime = stamp.ToDatetime(tzinfo=UTC)
    return value

"""The revocation feed behind `AuthInternalService.WatchRevocations`.

Revocations are rows of `auth_revocation`, written in the same transaction as the revocation they
describe (see `Store._record`), so the feed is as durable as the revocation and a subscriber that
reconnects with its cursor replays what it missed, across auth restarts. A stream wakes up at once
when this process stored a revocation (`notify`) and polls the table every `poll_seconds` for those
stored by another auth replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf import timestamp_pb2

from services.auth.models import Revocation, as_utc
from services.auth.store import Store
from viarte.auth.v1 import auth_pb2

__all__ = ["RevocationFeed", "revocation_proto"]

T = TypeVar("T")
Db = Callable[..., Awaitable[Any]]
_BATCH = 500


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(as_utc(value))
    return stamp


def revocation_proto(row: Revocation) -> auth_pb2.Revocation:
    message = auth_pb2.Revocation(
        sequence=int(row.sequence or 0), revoke_time=_ts(row.revoke_time), expire_time=_ts(row.expire_time)
    )
    if row.kind == "session":
        message.session_id = row.target
    elif row.kind == "user":
        message.user_id = row.target
    else:
        message.api_key_id = row.target
    return message


class RevocationFeed:
    def __init__(self, store: Store, db: Db, poll_seconds: float = 1.0) -> None:
        self._store = store
        self._db = db
        self._poll = poll_seconds
        # One event per open stream: `notify` wakes them all without waiting for the next poll.
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        """A revocation was just committed by this process."""
        for event in self._waiters:
            event.set()

    async def stream(self, after_sequence: int) -> AsyncIterator[auth_pb2.WatchRevocationsResponse]:
        wake = asyncio.Event()
        self._waiters.add(wake)
        try:
            cursor, reset = after_sequence, False
            if cursor > 0 and cursor > await self._db(self._store.last_revocation_sequence):
                # The subscriber saw sequences this database never had (a new identity database):
                # start over, or it would skip everything up to its old cursor.
                cursor, reset = 0, True
            caught_up_sent = False
            while True:
                wake.clear()
                rows: list[Revocation] = await self._db(self._store.revocations_after, cursor, _BATCH)
                if rows:
                    cursor = int(rows[-1].sequence or cursor)
                caught_up = len(rows) < _BATCH
                if rows or (caught_up and not caught_up_sent) or reset:
                    yield auth_pb2.WatchRevocationsResponse(
                        revocations=[revocation_proto(r) for r in rows], caught_up=caught_up, reset=reset
                    )
                    reset = False
                    caught_up_sent = caught_up_sent or caught_up
                if not caught_up:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self._poll)
        finally:
            self._waiters.discard(wake)

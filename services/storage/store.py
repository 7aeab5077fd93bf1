"""Asset metadata access (blocking; the servicer calls it through `services.kit.db.run_db`).

Quotas hold across replicas on one database: every write that adds to an owner's usage (`reserve`,
`commit_ready`) first locks the owner's `storage_quota_owner` row, then sums the owner's rows, checks
and writes in the same transaction. Two replicas (or two threads) reserving for one owner so take
turns; other owners are not held up on PostgreSQL (SQLite serialises all writers anyway)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.kit.db import insert_missing
from services.storage.models import AssetRow, QuotaOwner, State, utcnow

__all__ = ["AssetStore", "QuotaExceeded", "Usage"]


@dataclass(frozen=True)
class Usage:
    bytes: int
    count: int


class QuotaExceeded(Exception):
    def __init__(self, which: str, usage: Usage) -> None:
        super().__init__(which)
        self.which = which  # "bytes" | "count"
        self.usage = usage


_COUNTED = (State.PENDING, State.READY)


class AssetStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- reads -------------------------------------------------------------------------------------
    def get(self, asset_id: str, owner_id: str | None = None) -> AssetRow | None:
        with self._session() as s:
            row = s.get(AssetRow, asset_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            return None
        return row

    def by_request_id(self, owner_id: str, request_id: str) -> AssetRow | None:
        with self._session() as s:
            return s.exec(
                select(AssetRow).where(col(AssetRow.owner_id) == owner_id, col(AssetRow.request_id) == request_id)
            ).first()

    def usage(self, owner_id: str, session: Session | None = None, excluding: str | None = None) -> Usage:
        """Bytes and count of the owner's PENDING (declared sizes) and READY assets; without the
        owner's lock (see `_lock_owner`) only an estimate."""
        stmt = sa.select(sa.func.coalesce(sa.func.sum(AssetRow.size_bytes), 0), sa.func.count()).where(
            col(AssetRow.owner_id) == owner_id, col(AssetRow.state).in_(_COUNTED)
        )
        if excluding is not None:
            stmt = stmt.where(col(AssetRow.id) != excluding)
        if session is not None:
            total, count = session.execute(stmt).one()
        else:
            with self._session() as s:
                total, count = s.execute(stmt).one()
        return Usage(int(total), int(count))

    def ready_bytes(self, owner_id: str) -> int:
        with self._session() as s:
            return int(
                s.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(AssetRow.size_bytes), 0)).where(
                        col(AssetRow.owner_id) == owner_id, col(AssetRow.state) == State.READY
                    )
                ).scalar_one()
            )

    def list_ready(
        self, owner_id: str, kind: int, after: tuple[datetime, str] | None, limit: int
    ) -> list[AssetRow]:
        """Newest first; `after` = (create_time, id) of the last row of the previous page."""
        stmt = select(AssetRow).where(col(AssetRow.owner_id) == owner_id, col(AssetRow.state) == State.READY)
        if kind:
            stmt = stmt.where(col(AssetRow.kind) == kind)
        if after is not None:
            t, last_id = after
            stmt = stmt.where(
                sa.or_(
                    col(AssetRow.create_time) < t,
                    sa.and_(col(AssetRow.create_time) == t, col(AssetRow.id) < last_id),
                )
            )
        stmt = stmt.order_by(col(AssetRow.create_time).desc(), col(AssetRow.id).desc()).limit(limit)
        with self._session() as s:
            return list(s.exec(stmt).all())

    def in_state(self, state: State, before: datetime | None = None) -> list[AssetRow]:
        """Rows in `state` (PENDING: only those whose expire_time is before `before`)."""
        stmt = select(AssetRow).where(col(AssetRow.state) == state)
        if before is not None:
            stmt = stmt.where(col(AssetRow.expire_time) < before)
        with self._session() as s:
            return list(s.exec(stmt).all())

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        found: set[str] = set()
        with self._session() as s:
            for i in range(0, len(ids), 500):
                found |= set(s.exec(select(AssetRow.id).where(col(AssetRow.id).in_(ids[i : i + 500]))).all())
        return found

    def ids_not_in_state(self, ids: Iterable[str], state: State) -> set[str]:
        """Those of `ids` whose row exists in another state than `state`."""
        ids = list(ids)
        found: set[str] = set()
        with self._session() as s:
            for i in range(0, len(ids), 500):
                stmt = select(AssetRow.id).where(col(AssetRow.id).in_(ids[i : i + 500]), col(AssetRow.state) != state)
                found |= set(s.exec(stmt).all())
        return found

    def all_rows(self) -> list[AssetRow]:
        with self._session() as s:
            return list(s.exec(select(AssetRow)).all())

    # -- writes ------------------------------------------------------------------------------------
    def reserve(self, row: AssetRow, quota_bytes: int, quota_count: int) -> tuple[AssetRow, bool]:
        """Inserts a PENDING row within the owner's quota. Idempotent on (owner, request_id): returns
        (existing row, False) when that request was seen before, else (row, True).
        Raises QuotaExceeded."""
        with self._session() as s:
            self._lock_owner(s, row.owner_id)
            if row.request_id:
                existing = s.exec(
                    select(AssetRow).where(
                        col(AssetRow.owner_id) == row.owner_id, col(AssetRow.request_id) == row.request_id
                    )
                ).first()
                if existing is not None and existing.state != State.DELETING:
                    return existing, False
                if existing is not None:
                    row.request_id = None  # the old one is being deleted: a fresh asset
            usage = self.usage(row.owner_id, s)
            if usage.count + 1 > quota_count:
                raise QuotaExceeded("count", usage)
            if usage.bytes + row.size_bytes > quota_bytes:
                raise QuotaExceeded("bytes", usage)
            s.add(row)
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                existing = self.by_request_id(row.owner_id, row.request_id or "")
                if existing is None:
                    raise
                return existing, False
            return row, True

    def commit_ready(self, asset_id: str, owner_id: str, quota_bytes: int, **values: Any) -> bool:
        """PENDING -> `values` (READY with the verified `size_bytes`), provided the owner's other
        assets leave room for that size: an upload that declared no size reserved none, so this is
        where concurrent undeclared streams are held to the quota. False when the row is no longer
        PENDING (the janitor reaped it). Raises QuotaExceeded."""
        values.setdefault("update_time", utcnow())
        with self._session() as s:
            self._lock_owner(s, owner_id)
            others = self.usage(owner_id, s, excluding=asset_id)
            if others.bytes + int(values["size_bytes"]) > quota_bytes:
                raise QuotaExceeded("bytes", others)
            result = s.execute(
                sa.update(AssetRow)
                .where(col(AssetRow.id) == asset_id, col(AssetRow.state) == State.PENDING)
                .values(**values)
            )
            s.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _lock_owner(s: Session, owner_id: str) -> None:
        """Holds the owner's quota row until the transaction ends (see the module docstring)."""
        insert_missing(s, QuotaOwner, "owner_id", owner_id=owner_id)
        s.get(QuotaOwner, owner_id, with_for_update=True, populate_existing=True)

    def update(self, asset_id: str, expect: Sequence[State], **values: Any) -> bool:
        """Compare-and-set: updates the row only while its state is one of `expect`."""
        values.setdefault("update_time", utcnow())
        with self._session() as s:
            result = s.execute(
                sa.update(AssetRow)
                .where(col(AssetRow.id) == asset_id, col(AssetRow.state).in_(list(expect)))
                .values(**values)
            )
            s.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def delete_row(self, asset_id: str) -> None:
        with self._session() as s:
            s.execute(sa.delete(AssetRow).where(col(AssetRow.id) == asset_id))
            s.commit()

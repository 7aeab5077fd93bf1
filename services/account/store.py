"""Blocking database access of the account service (called through ``run_db``).

``record_outcomes`` is the outbox: the usage records and one delivery row per subscribed endpoint
are one transaction, so a job's end is either fully recorded with its webhooks queued or not at
all, and the dispatcher only ever reads committed rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.account.limits import close_admissions, prune_closed
from services.account.models import (
    DeliveryState,
    UsageRecordRow,
    WebhookAttemptRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    new_id,
    utcnow,
)  # fmt: skip

__all__ = ["AccountStore", "Claimed", "KindTotals", "NewRecord", "Period"]


@dataclass(frozen=True)
class Period:
    user_id: str
    start: datetime
    end: datetime
    api_key_id: str = ""
    kind: int = 0

    def where(self) -> list[sa.ColumnElement[bool]]:
        clauses = [
            col(UsageRecordRow.user_id) == self.user_id,
            col(UsageRecordRow.end_time) >= self.start,
            col(UsageRecordRow.end_time) < self.end,
        ]
        if self.api_key_id:
            clauses.append(col(UsageRecordRow.api_key_id) == self.api_key_id)
        if self.kind:
            clauses.append(col(UsageRecordRow.kind) == self.kind)
        return clauses


@dataclass(frozen=True)
class KindTotals:
    kind: int
    jobs: int
    credits: int
    video_seconds: float
    frames: int
    gpu_seconds: float


@dataclass(frozen=True)
class Claimed:
    delivery: WebhookDeliveryRow
    endpoint: WebhookEndpointRow | None


@dataclass(frozen=True)
class NewRecord:
    """A job outcome to record: the usage record's column values and its webhook event."""

    values: dict[str, Any]
    event_type: str
    payload: str  # the event as JSON, the same for every endpoint


def _insert_records(dialect: str) -> sa.Insert:
    return _INSERT_RECORDS[dialect == "postgresql"]


_U = UsageRecordRow.__table__  # type: ignore[attr-defined]
_E = WebhookEndpointRow.__table__  # type: ignore[attr-defined]
# Statements built once (bind parameters): building one costs more than running it on SQLite.
_INSERT_RECORDS = {
    postgres: (postgresql.insert if postgres else sqlite.insert)(_U)
    .on_conflict_do_nothing(index_elements=["job_id"]).returning(_U.c.job_id)
    for postgres in (False, True)
}  # fmt: skip
_RECORDS = sa.select(_U).where(_U.c.job_id.in_(sa.bindparam("ids", expanding=True)))
_ENDPOINTS = sa.select(_E.c.id, _E.c.user_id, _E.c.event_types).where(
    _E.c.user_id.in_(sa.bindparam("users", expanding=True)), _E.c.disabled.is_(False))
_DELIVERY_INSERT = sa.insert(WebhookDeliveryRow.__table__)  # type: ignore[attr-defined]


class AccountStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- usage -----------------------------------------------------------------------------------
    def record_outcomes(self, batch: Sequence[NewRecord]) -> list[tuple[Any, bool]]:
        """Records a batch of job outcomes in one transaction: per outcome (in order) the stored
        record and whether it was created now. SQLAlchemy Core, statements built once: one INSERT
        … ON CONFLICT DO NOTHING for the records (idempotent on the job id: what it skipped was
        recorded before, by this replica or another, and is read back), one upsert closing their
        admissions, one read of the owners' endpoints and one INSERT of the deliveries (the outbox)."""
        now = utcnow()
        unique: dict[str, NewRecord] = {}
        for r in batch:
            unique.setdefault(r.values["job_id"], r)  # a job repeated in the batch: the first counts
        with self.engine.begin() as conn:
            # In job id order, here and in every batch write of the rows they lock (closing admissions,
            # settling leases): two PostgreSQL transactions then wait on each other, never deadlock.
            ordered = [unique[job_id] for job_id in sorted(unique)]
            created = set(conn.execute(_insert_records(conn.dialect.name), [r.values for r in ordered]).scalars())
            before = [job_id for job_id in unique if job_id not in created]
            stored = {row.job_id: row for row in conn.execute(_RECORDS, {"ids": before})} if before else {}
            new = [r for r in ordered if r.values["job_id"] in created]
            if new:
                close_admissions(conn, [(r.values["job_id"], r.values["user_id"], r.values["api_key_id"]) for r in new], now)
                users = sorted({r.values["user_id"] for r in new})
                endpoints: dict[str, list[Any]] = {}
                for e in conn.execute(_ENDPOINTS, {"users": users}):
                    endpoints.setdefault(e.user_id, []).append(e)
                deliveries = [
                    {"id": new_id("msg_"), "endpoint_id": e.id, "user_id": e.user_id, "event_type": r.event_type,
                     "job_id": r.values["job_id"], "event_key": f"{r.event_type}:{r.values['job_id']}",
                     "payload": r.payload, "state": DeliveryState.PENDING.value, "attempt_count": 0,
                     "last_status_code": 0, "create_time": now, "window_start_time": now, "next_attempt_time": now,
                     "lease_owner": "", "lease_expire_time": None}
                    for r in new for e in endpoints.get(r.values["user_id"], [])
                    if not e.event_types or r.event_type in e.event_types.split(",")
                ]  # fmt: skip
                if deliveries:
                    conn.execute(_DELIVERY_INSERT, deliveries)
        out: list[tuple[Any, bool]] = []
        for r in batch:
            job_id = r.values["job_id"]
            if job_id in created:
                out.append((SimpleNamespace(**unique[job_id].values), True))
                created.discard(job_id)  # a repeat later in the batch: recorded already
            else:
                out.append((stored.get(job_id) or SimpleNamespace(**unique[job_id].values), False))
        return out

    def add_delivery(self, row: WebhookDeliveryRow) -> WebhookDeliveryRow:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.add(row)
        return row

    def prune_admissions(self, before: datetime) -> int:
        """Closed admission rows closed before ``before`` (``limits.prune_closed``)."""
        with self.engine.begin() as conn:
            return prune_closed(conn, before)

    def totals(self, period: Period) -> list[KindTotals]:
        r = UsageRecordRow
        query = (
            sa.select(
                col(r.kind), sa.func.count(), sa.func.coalesce(sa.func.sum(r.credits), 0),
                sa.func.coalesce(sa.func.sum(r.video_seconds), 0.0), sa.func.coalesce(sa.func.sum(r.frames), 0),
                sa.func.coalesce(sa.func.sum(r.gpu_seconds), 0.0),
            )
            .where(*period.where())
            .group_by(col(r.kind))
            .order_by(col(r.kind))
        )  # fmt: skip
        with Session(self.engine) as s:
            rows = s.execute(query).all()
        return [KindTotals(int(k), int(n), int(c), float(v), int(f), float(g)) for k, n, c, v, f, g in rows]

    def list_records(
        self, period: Period, after: tuple[datetime, str] | None, limit: int
    ) -> list[UsageRecordRow]:
        """Newest first, keyset-paginated on (end_time, job_id)."""
        query = select(UsageRecordRow).where(*period.where())
        if after is not None:
            t, job = after
            query = query.where(
                sa.or_(col(UsageRecordRow.end_time) < t,
                       sa.and_(col(UsageRecordRow.end_time) == t, col(UsageRecordRow.job_id) < job))
            )  # fmt: skip
        query = query.order_by(col(UsageRecordRow.end_time).desc(), col(UsageRecordRow.job_id).desc()).limit(limit)
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.exec(query).all())

    def iter_records(self, period: Period, batch: int = 500) -> Iterator[list[UsageRecordRow]]:
        """Oldest first, in batches, each its own short read (an export never holds a transaction)."""
        after: tuple[datetime, str] | None = None
        while True:
            query = select(UsageRecordRow).where(*period.where())
            if after is not None:
                t, job = after
                query = query.where(
                    sa.or_(col(UsageRecordRow.end_time) > t,
                           sa.and_(col(UsageRecordRow.end_time) == t, col(UsageRecordRow.job_id) > job))
                )  # fmt: skip
            query = query.order_by(col(UsageRecordRow.end_time), col(UsageRecordRow.job_id)).limit(batch)
            with Session(self.engine, expire_on_commit=False) as s:
                rows = list(s.exec(query).all())
            if not rows:
                return
            yield rows
            after = (rows[-1].end_time, rows[-1].job_id)

    # -- endpoints -------------------------------------------------------------------------------
    def count_endpoints(self, user_id: str) -> int:
        with Session(self.engine) as s:
            query = sa.select(sa.func.count()).select_from(WebhookEndpointRow).where(
                col(WebhookEndpointRow.user_id) == user_id
            )
            return int(s.execute(query).scalar_one())

    def add_endpoint(self, row: WebhookEndpointRow) -> WebhookEndpointRow:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.add(row)
        return row

    def get_endpoint(self, user_id: str, endpoint_id: str) -> WebhookEndpointRow | None:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(WebhookEndpointRow, endpoint_id)
        return row if row is not None and row.user_id == user_id else None

    def list_endpoints(
        self, user_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[WebhookEndpointRow]:
        e = WebhookEndpointRow
        query = select(e).where(e.user_id == user_id)
        if after is not None:
            t, eid = after
            query = query.where(sa.or_(col(e.create_time) < t, sa.and_(col(e.create_time) == t, col(e.id) < eid)))
        query = query.order_by(col(e.create_time).desc(), col(e.id).desc()).limit(limit)
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.exec(query).all())

    def delete_endpoint(self, user_id: str, endpoint_id: str) -> bool:
        with Session(self.engine) as s, s.begin():
            row = s.get(WebhookEndpointRow, endpoint_id)
            if row is None or row.user_id != user_id:
                return False
            ids = sa.select(col(WebhookDeliveryRow.id)).where(col(WebhookDeliveryRow.endpoint_id) == endpoint_id)
            s.execute(sa.delete(WebhookAttemptRow).where(col(WebhookAttemptRow.delivery_id).in_(ids)))
            s.execute(sa.delete(WebhookDeliveryRow).where(col(WebhookDeliveryRow.endpoint_id) == endpoint_id))
            s.delete(row)
            return True

    def rotate_secret(
        self, user_id: str, endpoint_id: str, seal: Callable[[str], str], expire: datetime
    ) -> WebhookEndpointRow | None:
        """The new secret sealed by ``seal(endpoint_id)``; the current one (read under the row lock)
        becomes the previous secret until ``expire``."""
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            row = s.get(WebhookEndpointRow, endpoint_id, with_for_update=True, populate_existing=True)
            if row is None or row.user_id != user_id:
                return None
            row.previous_secret_box = row.secret_box
            row.previous_secret_expire_time = expire
            row.secret_box = seal(endpoint_id)
            s.add(row)
        return row

    def enable_endpoint(self, user_id: str, endpoint_id: str) -> WebhookEndpointRow | None:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            row = s.get(WebhookEndpointRow, endpoint_id, with_for_update=True, populate_existing=True)
            if row is None or row.user_id != user_id:
                return None
            row.disabled, row.disabled_reason = False, ""
            s.add(row)
        return row

    # -- deliveries ------------------------------------------------------------------------------
    def list_deliveries(
        self, endpoint_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[WebhookDeliveryRow, list[WebhookAttemptRow]]]:
        d = WebhookDeliveryRow
        query = select(d).where(d.endpoint_id == endpoint_id)
        if after is not None:
            t, did = after
            query = query.where(sa.or_(col(d.create_time) < t, sa.and_(col(d.create_time) == t, col(d.id) < did)))
        query = query.order_by(col(d.create_time).desc(), col(d.id).desc()).limit(limit)
        with Session(self.engine, expire_on_commit=False) as s:
            rows = list(s.exec(query).all())
            attempts = self._attempts(s, [r.id for r in rows])
        return [(r, attempts.get(r.id, [])) for r in rows]

    def get_delivery(self, user_id: str, delivery_id: str) -> tuple[WebhookDeliveryRow, list[WebhookAttemptRow]] | None:
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(WebhookDeliveryRow, delivery_id)
            if row is None or row.user_id != user_id:
                return None
            return row, self._attempts(s, [row.id]).get(row.id, [])

    @staticmethod
    def _attempts(s: Session, ids: list[str]) -> dict[str, list[WebhookAttemptRow]]:
        out: dict[str, list[WebhookAttemptRow]] = {}
        if not ids:
            return out
        query = select(WebhookAttemptRow).where(col(WebhookAttemptRow.delivery_id).in_(ids))
        for a in s.exec(query.order_by(col(WebhookAttemptRow.attempt))).all():
            out.setdefault(a.delivery_id, []).append(a)
        return out

    def redeliver(self, user_id: str, delivery_id: str, now: datetime) -> WebhookDeliveryRow | None:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            row = s.get(WebhookDeliveryRow, delivery_id, with_for_update=True, populate_existing=True)
            if row is None or row.user_id != user_id:
                return None
            row.state, row.next_attempt_time, row.window_start_time = DeliveryState.PENDING, now, now
            row.lease_owner, row.lease_expire_time = "", None
            s.add(row)
        return row

    def claim(self, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[Claimed]:
        """Leases up to ``limit`` due deliveries to ``owner``. On PostgreSQL the candidate rows are
        locked with ``FOR UPDATE SKIP LOCKED``, so replicas claiming at once take disjoint sets; the
        lease (checked again in the UPDATE) keeps a row with its claimer until it expires."""
        d = WebhookDeliveryRow
        free = sa.or_(col(d.lease_expire_time).is_(None), col(d.lease_expire_time) < now)
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            query = (
                select(d).where(d.state == DeliveryState.PENDING, col(d.next_attempt_time) <= now, free)
                .order_by(col(d.next_attempt_time)).limit(limit).with_for_update(skip_locked=True)
            )  # fmt: skip
            rows = list(s.exec(query).all())
            if not rows:
                return []
            s.execute(
                sa.update(d).where(col(d.id).in_([r.id for r in rows]), free)
                .values(lease_owner=owner, lease_expire_time=lease_until)
                .execution_options(synchronize_session=False)
            )  # fmt: skip
            # Only the rows this UPDATE leased (a lease taken meanwhile by another claimer wins).
            rows = list(s.exec(
                select(d).where(col(d.id).in_([r.id for r in rows]), d.lease_owner == owner,
                                d.lease_expire_time == lease_until).execution_options(populate_existing=True)
            ).all())  # fmt: skip
            endpoints = {
                e.id: e for e in s.exec(
                    select(WebhookEndpointRow).where(col(WebhookEndpointRow.id).in_({r.endpoint_id for r in rows}))
                ).all()
            }  # fmt: skip
        return [Claimed(r, endpoints.get(r.endpoint_id)) for r in rows]

    def finish_attempt(
        self, delivery_id: str, owner: str, attempt: WebhookAttemptRow | None, *, state: DeliveryState,
        next_attempt_time: datetime | None, disable_endpoint: str = "",
    ) -> bool:
        """Logs ``attempt`` and moves the delivery on, if ``owner`` still holds its lease (a replica
        whose lease expired mid-attempt must not overwrite the next claimer's result)."""
        d = WebhookDeliveryRow
        with Session(self.engine) as s, s.begin():
            row = s.get(d, delivery_id, with_for_update=True, populate_existing=True)
            if row is None or row.lease_owner != owner:
                return False
            if attempt is not None:
                row.attempt_count += 1
                attempt.attempt = row.attempt_count
                row.last_status_code = attempt.status_code
                s.add(attempt)
            row.state, row.next_attempt_time = state, next_attempt_time
            row.lease_owner, row.lease_expire_time = "", None
            s.add(row)
            if disable_endpoint:
                s.execute(
                    sa.update(WebhookEndpointRow).where(col(WebhookEndpointRow.id) == row.endpoint_id)
                    .values(disabled=True, disabled_reason=disable_endpoint)
                )  # fmt: skip
            return True

    def next_due(self, now: datetime) -> datetime | None:
        """When the next pending delivery becomes claimable: its attempt time, or for one leased
        now (being sent, or held by a replica that died) the lease's end."""
        d = WebhookDeliveryRow
        leased = sa.and_(col(d.lease_expire_time).is_not(None), col(d.lease_expire_time) > now)
        claimable = sa.case((leased, col(d.lease_expire_time)), else_=col(d.next_attempt_time))
        with Session(self.engine) as s:
            query = sa.select(sa.func.min(claimable)).where(col(d.state) == DeliveryState.PENDING)
            return s.execute(query).scalar_one_or_none()

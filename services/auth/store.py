"""Database operations of the auth service. Synchronous (SQLAlchemy); handlers call them through
`services.kit.db.run_db` so the event loop never blocks on the database."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.auth.models import ApiKey, AuthSession, RefreshToken, Revocation, User, as_utc, utcnow

__all__ = [
    "EmailTakenError",
    "RefreshOutcome",
    "RefreshResult",
    "Store",
]


class EmailTakenError(Exception):
    """The (normalised) email already has an account."""


class RefreshOutcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    REUSED = "reused"


@dataclass(frozen=True)
class RefreshResult:
    outcome: RefreshOutcome
    user: User | None = None
    session: AuthSession | None = None


# Writing last_used_time on every API call would turn reads into writes; minute resolution is plenty.
_LAST_USED_RESOLUTION_SECONDS = 60


# pg_advisory_xact_lock key serialising revocation-feed writers (see Store._record).
_FEED_WRITER_LOCK = 0x7669617274650001


class Store:
    def __init__(self, engine: Engine, revocation_ttl: timedelta = timedelta(minutes=16)) -> None:
        self.engine = engine
        # How long a revocation stays in the feed: longer than any credential it names can live
        # (access token TTL, a verifier's API-key cache) plus clock leeway.
        self.revocation_ttl = revocation_ttl

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- users ---------------------------------------------------------------------------------
    def create_user(self, email: str, password_hash: str, display_name: str, role: str) -> User:
        user = User(email=email, password_hash=password_hash, display_name=display_name, role=role)
        with self._session() as s:
            s.add(user)
            try:
                s.commit()
            except IntegrityError as e:
                raise EmailTakenError(email) from e
        return user

    def user_by_email(self, email: str) -> User | None:
        with self._session() as s:
            return s.exec(select(User).where(User.email == email)).first()

    def user(self, user_id: str) -> User | None:
        with self._session() as s:
            return s.get(User, user_id)

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        with self._session() as s, s.begin():
            s.execute(sa.update(User).where(col(User.id) == user_id).values(password_hash=password_hash))

    def list_users(self, after: tuple[datetime, str] | None, limit: int) -> list[User]:
        """Users in creation order (keyset pagination on (create_time, id))."""
        query = select(User).order_by(col(User.create_time), col(User.id)).limit(limit)
        if after is not None:
            t, uid = after
            query = query.where(
                sa.or_(col(User.create_time) > t, sa.and_(col(User.create_time) == t, col(User.id) > uid))
            )
        with self._session() as s:
            return list(s.exec(query).all())

    def update_user(self, user_id: str, role: str | None, disabled: bool,
                    limits: dict[str, int] | None = None) -> User | None:
        """Applies the change; a role change or disabling revokes every session of the user.
        ``limits``: new limit column values (the user's over all of their API keys)."""
        now = utcnow()
        with self._session() as s, s.begin():
            user = s.get(User, user_id, with_for_update=True)
            if user is None:
                return None
            changed_role = role is not None and role != user.role
            if role is not None:
                user.role = role
            newly_disabled = disabled and not user.disabled
            user.disabled = disabled
            for column, value in (limits or {}).items():
                setattr(user, column, value)
            user.update_time = now
            if changed_role or newly_disabled:
                self._revoke_user_sessions(s, user_id, "account_changed", now)
                # The access tokens already out carry the old role (or a disabled account): every
                # service must refuse them, and the user's API keys, now.
                self._record(s, "user", user_id, now)
        return user

    # -- sessions and refresh tokens -----------------------------------------------------------
    def create_session(
        self,
        user_id: str,
        session_expire: datetime,
        refresh_hash: str,
        refresh_expire: datetime,
        client_address: str,
    ) -> AuthSession:
        sess = AuthSession(user_id=user_id, expire_time=session_expire, client_address=client_address[:100])
        with self._session() as s, s.begin():
            s.add(sess)
            s.flush()
            s.add(RefreshToken(session_id=sess.id, token_hash=refresh_hash, expire_time=refresh_expire))
        return sess

    def session_active(self, session_id: str) -> bool:
        with self._session() as s:
            sess = s.get(AuthSession, session_id)
            if sess is None or sess.revoke_time is not None:
                return False
            expire = as_utc(sess.expire_time)
            return expire is not None and expire > utcnow()

    def session_user(self, session_id: str, user_id: str) -> User | None:
        """The user of a live (not revoked, not expired) session, in one query: the hot path of
        every authenticated auth RPC."""
        query = (
            select(User)
            .join(AuthSession, col(AuthSession.user_id) == col(User.id))
            .where(
                col(AuthSession.id) == session_id,
                col(User.id) == user_id,
                col(AuthSession.revoke_time).is_(None),
                col(AuthSession.expire_time) > utcnow(),
            )
        )
        with self._session() as s:
            return s.exec(query).first()

    def revoke_session(self, session_id: str, reason: str) -> None:
        now = utcnow()
        with self._session() as s, s.begin():
            done = s.execute(
                sa.update(AuthSession)
                .where(col(AuthSession.id) == session_id, col(AuthSession.revoke_time).is_(None))
                .values(revoke_time=now, revoke_reason=reason)
            )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                self._record(s, "session", session_id, now)

    @staticmethod
    def _revoke_user_sessions(s: Session, user_id: str, reason: str, now: datetime) -> None:
        s.execute(
            sa.update(AuthSession)
            .where(col(AuthSession.user_id) == user_id, col(AuthSession.revoke_time).is_(None))
            .values(revoke_time=now, revoke_reason=reason)
        )

    def rotate_refresh(
        self, token_hash: str, new_hash: str, new_expire: datetime, retry_grace: timedelta = timedelta(0)
    ) -> RefreshResult:
        """Spends one refresh token and stores its successor, atomically.

        A spent token presented again means it leaked (or the legitimate client lost a race with a
        thief): the whole session family is revoked, so whoever holds the newer token loses it too.
        One exception, a client that lost the response: the family's last spent token, presented
        within `retry_grace` of its rotation while its successor is still unused, is rotated again and
        the unused successor is superseded (presenting it later is reuse). The grace never extends:
        it counts from the first rotation, and a superseded token gets none.
        """
        now = utcnow()
        with self._session() as s, s.begin():
            token = s.exec(select(RefreshToken).where(RefreshToken.token_hash == token_hash)).first()
            if token is None:
                return RefreshResult(RefreshOutcome.INVALID)
            sess = s.get(AuthSession, token.session_id)
            if sess is None:
                return RefreshResult(RefreshOutcome.INVALID)
            if sess.revoke_time is not None:
                return RefreshResult(RefreshOutcome.REVOKED)
            token_expire, sess_expire = as_utc(token.expire_time), as_utc(sess.expire_time)
            if token.rotate_time is not None or token.supersede_time is not None:
                if not self._supersede_unused_successor(s, token, now, retry_grace):
                    return self._reuse(s, sess, now)
            elif (token_expire is not None and token_expire <= now) or (
                sess_expire is not None and sess_expire <= now
            ):
                return RefreshResult(RefreshOutcome.EXPIRED)
            else:
                # Conditional update: of two concurrent refreshes with one token, exactly one wins.
                spent = s.execute(
                    sa.update(RefreshToken)
                    .where(col(RefreshToken.id) == token.id, col(RefreshToken.rotate_time).is_(None))
                    .values(rotate_time=now)
                )
                if spent.rowcount != 1:  # type: ignore[attr-defined]
                    return self._reuse(s, sess, now)
            if sess_expire is not None and sess_expire <= now:
                return RefreshResult(RefreshOutcome.EXPIRED)
            user = s.get(User, sess.user_id)
            if user is None or user.disabled:
                sess.revoke_time, sess.revoke_reason = now, "account_disabled"
                self._record(s, "session", sess.id, now)
                return RefreshResult(RefreshOutcome.REVOKED)
            expire = min(new_expire, sess_expire) if sess_expire is not None else new_expire
            s.add(RefreshToken(session_id=sess.id, token_hash=new_hash, expire_time=expire))
            return RefreshResult(RefreshOutcome.OK, user=user, session=sess)

    @staticmethod
    def _supersede_unused_successor(s: Session, token: RefreshToken, now: datetime, grace: timedelta) -> bool:
        """For a spent token presented again: True (and the unused successor superseded) when this is a
        retry within the grace; False when it is reuse."""
        rotated = as_utc(token.rotate_time)
        # (`now` was read before a concurrent rotation committed, so `now - rotated` may be negative.)
        if grace <= timedelta(0) or token.supersede_time is not None or rotated is None or now - rotated > grace:
            return False
        # Its successor is unused only while no token of the family was rotated after it.
        later = s.exec(
            select(RefreshToken.id).where(
                RefreshToken.session_id == token.session_id, col(RefreshToken.rotate_time) > token.rotate_time
            )
        ).first()
        if later is not None:
            return False
        # Exactly one live token (the unused successor, or the previous retry's); of two concurrent
        # retries one wins, the other is reuse.
        superseded = s.execute(
            sa.update(RefreshToken)
            .where(
                col(RefreshToken.session_id) == token.session_id,
                col(RefreshToken.rotate_time).is_(None),
                col(RefreshToken.supersede_time).is_(None),
            )
            .values(supersede_time=now)
        )
        return bool(superseded.rowcount == 1)  # type: ignore[attr-defined]

    def _reuse(self, s: Session, sess: AuthSession, now: datetime) -> RefreshResult:
        sess.revoke_time, sess.revoke_reason = now, "refresh_token_reused"
        s.add(sess)
        self._record(s, "session", sess.id, now)
        return RefreshResult(RefreshOutcome.REUSED)

    def purge_expired(self) -> int:
        """Deletes sessions and refresh tokens past their expiry (refused anyway); keeps tables small."""
        now = utcnow()
        with self._session() as s, s.begin():
            tokens = s.execute(sa.delete(RefreshToken).where(col(RefreshToken.expire_time) < now))
            expired = select(AuthSession.id).where(col(AuthSession.expire_time) < now)
            family = s.execute(sa.delete(RefreshToken).where(col(RefreshToken.session_id).in_(expired)))
            sessions = s.execute(sa.delete(AuthSession).where(col(AuthSession.expire_time) < now))
            revocations = s.execute(sa.delete(Revocation).where(col(Revocation.expire_time) < now))
        return sum(int(getattr(r, "rowcount", 0)) for r in (tokens, family, sessions, revocations))

    # -- API keys ------------------------------------------------------------------------------
    def create_api_key(
        self,
        user_id: str,
        name: str,
        prefix: str,
        secret_hash: str,
        scopes: Sequence[str],
        expire_time: datetime | None,
        limits: dict[str, int] | None = None,
    ) -> ApiKey:
        key = ApiKey(
            user_id=user_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            scopes=" ".join(scopes),
            expire_time=expire_time,
        )
        for column, value in (limits or {}).items():
            setattr(key, column, value)
        with self._session() as s, s.begin():
            s.add(key)
        return key

    def list_api_keys(self, user_id: str) -> list[ApiKey]:
        query = select(ApiKey).where(ApiKey.user_id == user_id).order_by(col(ApiKey.create_time))
        with self._session() as s:
            return list(s.exec(query).all())

    def revoke_api_key(self, user_id: str, key_id: str) -> bool:
        """False when the key does not exist or belongs to someone else (the same answer to both)."""
        with self._session() as s, s.begin():
            key = s.get(ApiKey, key_id)
            if key is None or key.user_id != user_id:
                return False
            if key.revoke_time is None:
                key.revoke_time = utcnow()
                self._record(s, "api_key", key.id, key.revoke_time)
        return True

    def resolve_api_key(self, secret_hash: str) -> tuple[ApiKey, User] | None:
        """The live key with this hash and its (enabled) owner; records the use."""
        now = utcnow()
        with self._session() as s, s.begin():
            key = s.exec(select(ApiKey).where(ApiKey.secret_hash == secret_hash)).first()
            if key is None or key.revoke_time is not None:
                return None
            expire = as_utc(key.expire_time)
            if expire is not None and expire <= now:
                return None
            user = s.get(User, key.user_id)
            if user is None or user.disabled:
                return None
            last = as_utc(key.last_used_time)
            if last is None or (now - last).total_seconds() >= _LAST_USED_RESOLUTION_SECONDS:
                key.last_used_time = now
        return key, user

    # -- the revocation feed -------------------------------------------------------------------
    def _record(self, s: Session, kind: str, target: str, now: datetime) -> None:
        """Adds a feed entry in the caller's transaction: stored if and only if the revocation is."""
        if s.get_bind().dialect.name == "postgresql":
            # Replicas write the feed concurrently, and a sequence is drawn at insert but visible at
            # commit: a later sequence committing first would move a subscriber's cursor past an
            # earlier one still in flight, which it would then never read. One writer at a time
            # (held to commit; always the transaction's last lock, so no deadlock) keeps commit
            # order = sequence order. Revocations are rare; the wait is one short commit.
            s.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FEED_WRITER_LOCK})
        s.add(Revocation(kind=kind, target=target, revoke_time=now, expire_time=now + self.revocation_ttl))

    def revocations_after(self, sequence: int, limit: int) -> list[Revocation]:
        """Feed entries after `sequence` that are still in force, in sequence order."""
        query = (
            select(Revocation)
            .where(col(Revocation.sequence) > sequence, col(Revocation.expire_time) > utcnow())
            .order_by(col(Revocation.sequence))
            .limit(limit)
        )
        with self._session() as s:
            return list(s.exec(query).all())

    def last_revocation_sequence(self) -> int:
        with self._session() as s:
            return int(s.exec(select(sa.func.max(Revocation.sequence))).one() or 0)

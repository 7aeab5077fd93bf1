"""Database layer on SQLite and a real PostgreSQL: migrations, rotation, reuse, keys, API keys."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from services.auth import credentials
from services.auth.keys import KeyStore
from services.auth.models import RefreshToken, SigningKeyRecord, utcnow
from services.auth.server import MIGRATIONS
from services.auth.store import EmailTakenError, RefreshOutcome, Store
from services.kit.db import make_engine, upgrade
from services.kit.tokens import decode_token, issue_token


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine, MIGRATIONS)
    yield engine
    engine.dispose()


def _user(store: Store, email: str = "a@example.com") -> str:
    return store.create_user(email, "hash", "", "user").id


def test_migrations_match_the_models_and_are_idempotent(engine: Engine) -> None:
    upgrade(engine, MIGRATIONS)  # a second run is a no-op
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    ours = [d for d in diff if "auth_" in repr(d)]
    assert ours == []


def test_email_is_unique(engine: Engine) -> None:
    store = Store(engine)
    _user(store)
    with pytest.raises(EmailTakenError):
        _user(store)


def _session(store: Store, user_id: str) -> tuple[str, str]:
    token = credentials.new_refresh_token()
    later = utcnow() + timedelta(hours=1)
    sess = store.create_session(user_id, later, credentials.digest(token), later, "127.0.0.1")
    return sess.id, token


def test_refresh_rotation_and_reuse_revokes_the_family(engine: Engine) -> None:
    store = Store(engine)
    user_id = _user(store)
    sid, first = _session(store, user_id)
    assert store.session_user(sid, user_id) is not None
    assert store.session_user(sid, _user(store, "intruder@example.com")) is None
    second = credentials.new_refresh_token()
    later = utcnow() + timedelta(hours=1)
    ok = store.rotate_refresh(credentials.digest(first), credentials.digest(second), later)
    assert ok.outcome is RefreshOutcome.OK and ok.session is not None and ok.session.id == sid
    assert store.session_active(sid)
    reused = store.rotate_refresh(credentials.digest(first), credentials.digest("rt_x"), later)
    assert reused.outcome is RefreshOutcome.REUSED
    assert not store.session_active(sid) and store.session_user(sid, user_id) is None
    # The successor died with its family.
    after = store.rotate_refresh(credentials.digest(second), credentials.digest("rt_y"), later)
    assert after.outcome is RefreshOutcome.REVOKED
    assert (
        store.rotate_refresh(credentials.digest("rt_unknown"), "x", later).outcome is RefreshOutcome.INVALID
    )


def test_a_retry_within_the_grace_rotates_again_and_the_grace_never_extends(engine: Engine) -> None:
    store = Store(engine)
    sid, first = _session(store, _user(store))
    later, grace = utcnow() + timedelta(hours=1), timedelta(seconds=30)
    digest = credentials.digest

    def rotate(token: str, grace: timedelta = grace) -> tuple[RefreshOutcome, str]:
        new = credentials.new_refresh_token()
        return store.rotate_refresh(digest(token), digest(new), later, grace).outcome, new

    outcome, _ = rotate(first)
    assert outcome is RefreshOutcome.OK
    outcome, _ = rotate(first)  # the response carrying the first successor never arrived
    assert outcome is RefreshOutcome.OK and store.session_active(sid)
    outcome, again = rotate(first)  # retried twice: still the same rotation's grace
    assert outcome is RefreshOutcome.OK
    # Each retry superseded the one before: one live token in the family.
    t = RefreshToken.__table__.c  # type: ignore[attr-defined]
    with engine.connect() as c:
        live = c.execute(select(t.token_hash).where(
            t.session_id == sid, t.rotate_time.is_(None), t.supersede_time.is_(None))).scalars().all()
    assert live == [digest(again)]
    # The grace counts from the first rotation: past it, the spent token is reuse.
    with engine.begin() as c:
        c.execute(update(RefreshToken.__table__).where(t.token_hash == digest(first))  # type: ignore[attr-defined]
                  .values(rotate_time=utcnow() - timedelta(seconds=31)))
    assert rotate(first)[0] is RefreshOutcome.REUSED
    assert not store.session_active(sid)
    assert rotate(again)[0] is RefreshOutcome.REVOKED


def test_a_superseded_token_gets_no_grace(engine: Engine) -> None:
    store = Store(engine)
    sid, first = _session(store, _user(store))
    later, grace = utcnow() + timedelta(hours=1), timedelta(seconds=30)
    successor, retry = credentials.new_refresh_token(), credentials.new_refresh_token()
    d = credentials.digest
    assert store.rotate_refresh(d(first), d(successor), later, grace).outcome is RefreshOutcome.OK
    assert store.rotate_refresh(d(first), d(retry), later, grace).outcome is RefreshOutcome.OK
    # `successor` was superseded a moment ago, within any grace: presenting it is still reuse.
    assert store.rotate_refresh(d(successor), d("rt_z"), later, grace).outcome is RefreshOutcome.REUSED
    assert not store.session_active(sid)


def test_concurrent_refreshes_with_one_token_have_one_winner(engine: Engine) -> None:
    store = Store(engine)
    _, token = _session(store, _user(store))
    later = utcnow() + timedelta(hours=1)
    outcomes: list[RefreshOutcome] = []
    barrier = threading.Barrier(4)

    def spend() -> None:
        barrier.wait()
        new = credentials.new_refresh_token()
        outcomes.append(
            store.rotate_refresh(credentials.digest(token), credentials.digest(new), later).outcome
        )

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 4 and outcomes.count(RefreshOutcome.OK) == 1, outcomes
    assert set(outcomes) <= {RefreshOutcome.OK, RefreshOutcome.REUSED, RefreshOutcome.REVOKED}


def test_expired_refresh_token(engine: Engine) -> None:
    store = Store(engine)
    user_id = _user(store)
    token = credentials.new_refresh_token()
    past, later = utcnow() - timedelta(seconds=1), utcnow() + timedelta(hours=1)
    store.create_session(user_id, later, credentials.digest(token), past, "")
    assert store.rotate_refresh(credentials.digest(token), "x", later).outcome is RefreshOutcome.EXPIRED


def test_purge_expired_sessions_and_tokens(engine: Engine) -> None:
    store = Store(engine)
    user_id = _user(store)
    live_sid, live_token = _session(store, user_id)
    past, later = utcnow() - timedelta(seconds=1), utcnow() + timedelta(hours=1)
    dead = store.create_session(user_id, past, credentials.digest("rt_dead"), later, "")
    store.create_session(user_id, later, credentials.digest("rt_stale"), past, "")
    assert store.purge_expired() == 3  # the stale token, the dead session's token, the dead session
    assert store.session_active(live_sid) and not store.session_active(dead.id)
    new = credentials.new_refresh_token()
    assert (
        store.rotate_refresh(credentials.digest(live_token), credentials.digest(new), later).outcome
        is RefreshOutcome.OK
    )


def test_migrations_downgrade_and_upgrade_again(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect as sa_inspect

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert not [t for t in sa_inspect(engine).get_table_names() if t.startswith("auth_")]
    upgrade(engine, MIGRATIONS)
    assert {"auth_user", "auth_session", "auth_refresh_token", "auth_api_key", "auth_signing_key"} <= set(
        sa_inspect(engine).get_table_names()
    )


def test_disabling_a_user_revokes_sessions_and_api_keys(engine: Engine) -> None:
    store = Store(engine)
    user_id = _user(store)
    sid, _ = _session(store, user_id)
    secret = credentials.new_api_key()
    store.create_api_key(user_id, "k", "vk_", credentials.digest(secret), ["assets:read"], None)
    assert store.resolve_api_key(credentials.digest(secret)) is not None
    updated = store.update_user(user_id, None, True)
    assert updated is not None and updated.disabled
    assert not store.session_active(sid)
    assert store.resolve_api_key(credentials.digest(secret)) is None


def test_api_key_last_used_revoke_and_ownership(engine: Engine) -> None:
    store = Store(engine)
    owner, other = _user(store), _user(store, "b@example.com")
    secret = credentials.new_api_key()
    key = store.create_api_key(owner, "k", "vk_", credentials.digest(secret), ["jobs:read"], None)
    assert key.last_used_time is None
    found = store.resolve_api_key(credentials.digest(secret))
    assert found is not None and found[0].last_used_time is not None
    assert [k.id for k in store.list_api_keys(owner)] == [key.id]
    assert not store.revoke_api_key(other, key.id)  # another user's key is "not found"
    assert store.resolve_api_key(credentials.digest(secret)) is not None
    assert store.revoke_api_key(owner, key.id)
    assert store.resolve_api_key(credentials.digest(secret)) is None


def test_api_key_expiry(engine: Engine) -> None:
    store = Store(engine)
    secret = credentials.new_api_key()
    past = utcnow() - timedelta(seconds=1)
    store.create_api_key(_user(store), "k", "vk_", credentials.digest(secret), ["jobs:read"], past)
    assert store.resolve_api_key(credentials.digest(secret)) is None


def test_list_users_keyset_pagination(engine: Engine) -> None:
    store = Store(engine)
    ids = [_user(store, f"u{i}@example.com") for i in range(5)]
    first = store.list_users(None, 2)
    second = store.list_users((first[-1].create_time, first[-1].id), 2)
    third = store.list_users((second[-1].create_time, second[-1].id), 2)
    assert [u.id for u in first + second + third] == ids


async def test_key_rotation_keeps_retired_keys_until_not_after(engine: Engine) -> None:
    keys = KeyStore(engine, rotation_period=timedelta(days=7), retire_grace=timedelta(minutes=16))
    old = keys.ensure_active()
    assert keys.ensure_active().kid == old.kid  # not due yet: no rotation
    token = issue_token(old, subject="u", issuer="i", audience="a", ttl_seconds=60)
    new = keys.rotate()
    assert new.kid != old.kid and keys.active.kid == new.kid
    listed = {k.kid: k for k in keys.verification_keys()}
    assert set(listed) == {old.kid, new.kid}
    assert listed[new.kid].not_after is None and listed[old.kid].not_after is not None
    retired = await keys.get(old.kid)
    assert retired is not None
    assert decode_token(token, retired, issuer="i", audience="a")["sub"] == "u"
    # A second process sees the same keys (they live in the database).
    other = KeyStore(engine, rotation_period=timedelta(days=7), retire_grace=timedelta(minutes=16))
    assert other.ensure_active().kid == new.kid
    # Past not_after the retired key is gone from verification and, once pruned, from the table.
    with engine.begin() as conn:
        conn.execute(
            update(SigningKeyRecord)
            .where(SigningKeyRecord.kid == old.kid)  # type: ignore[arg-type]
            .values(not_after=utcnow() - timedelta(seconds=1))
        )
    keys.reload()
    assert await keys.get(old.kid) is None
    assert [k.kid for k in keys.verification_keys()] == [new.kid]
    assert keys.prune() == 1


def test_an_overdue_key_rotates_at_startup(engine: Engine) -> None:
    first = KeyStore(
        engine, rotation_period=timedelta(days=7), retire_grace=timedelta(minutes=16)
    ).ensure_active()
    overdue = KeyStore(engine, rotation_period=timedelta(seconds=0), retire_grace=timedelta(minutes=16))
    assert overdue.ensure_active().kid != first.kid


def _signing_kids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(select_kids)]


select_kids = select(SigningKeyRecord.kid).order_by(SigningKeyRecord.create_time)  # type: ignore[arg-type]


def _ensure_all_at_once(stores: list[KeyStore]) -> set[str]:
    barrier, kids = threading.Barrier(len(stores)), set()

    def run(store: KeyStore) -> None:
        barrier.wait()
        kids.add(store.ensure_active().kid)

    threads = [threading.Thread(target=run, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return kids


def test_replicas_starting_or_coming_due_together_make_one_key(engine: Engine) -> None:
    """N auth replicas on one database: one signing key, not one each (a verifier that fetched one
    replica's key set would refuse the other's tokens), and every replica signs with it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("replicas run on PostgreSQL only (the runner refuses replicas on SQLite)")
    period = timedelta(seconds=2)
    stores = [KeyStore(engine, rotation_period=period, retire_grace=timedelta(minutes=16)) for _ in range(4)]
    first = _ensure_all_at_once(stores)
    assert len(first) == 1 and _signing_kids(engine) == list(first)
    # Due together: one rotation, adopted by all.
    time.sleep(max(s.seconds_until_due() for s in stores) + 0.1)
    second = _ensure_all_at_once(stores)
    assert len(second) == 1 and second != first
    assert _signing_kids(engine) == [*first, *second]


async def test_a_key_made_by_another_replica_verifies_at_once(engine: Engine) -> None:
    here = KeyStore(engine, rotation_period=timedelta(days=7), retire_grace=timedelta(minutes=16))
    here.ensure_active()
    other = KeyStore(engine, rotation_period=timedelta(days=7), retire_grace=timedelta(minutes=16))
    new = other.rotate()
    token = issue_token(new, subject="u", issuer="i", audience="a", ttl_seconds=60)
    key = await here.get(new.kid)  # not loaded here yet: the unknown kid reloads the table
    assert key is not None
    assert decode_token(token, key, issuer="i", audience="a")["sub"] == "u"
    assert here.ensure_active().kid == new.kid  # and this replica now signs with it


def test_revocation_feed_commits_in_sequence_order(engine: Engine) -> None:
    """Two replicas revoking at once: the one that drew the later sequence must not commit first,
    or a feed subscriber reading in between moves its cursor past the earlier one for good."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: commit order is sequence order already")
    store = Store(engine)
    now = utcnow()
    first = store._session()
    first.begin()
    store._record(first, "session", "first", now)
    first.flush()  # draws its sequence, not yet committed
    second_done = threading.Event()

    def revoke_second() -> None:
        with store._session() as s, s.begin():
            store._record(s, "session", "second", now)
        second_done.set()

    worker = threading.Thread(target=revoke_second)
    worker.start()
    try:
        # While the first is in flight, the second cannot commit: a reader sees neither or both.
        assert not second_done.wait(1.0), "a later revocation committed before an earlier one"
        assert [r.target for r in store.revocations_after(0, 10)] == []
    finally:
        first.commit()
        first.close()
        worker.join(10)
    rows = store.revocations_after(0, 10)
    assert [r.target for r in rows] == ["first", "second"]

"""Pooled PostgreSQL connections: pinged only after sitting idle (services/kit/db.make_engine).

A ping before every checkout was one more round trip per transaction; now a connection used
moments ago is trusted, and one that sat idle is pinged and replaced if its server session is gone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from services.kit import db
from services.kit.db import is_database_down, make_engine

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


def _backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(engine, pid: int) -> None:  # type: ignore[no-untyped-def]
    other = make_engine(str(engine.url))
    try:
        with other.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    finally:
        other.dispose()


def test_an_idle_connection_whose_session_ended_is_replaced_unseen(
    postgres_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle
    engine = make_engine(postgres_database())
    try:
        pid = _backend_pid(engine)
        _terminate(engine, pid)  # e.g. the server restarted while the pool sat idle
        assert _backend_pid(engine) != pid  # the ping failed, the pool reconnected: no error
    finally:
        engine.dispose()


def test_a_connection_used_moments_ago_is_not_pinged_and_a_lost_one_fails_once(
    postgres_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
    engine = make_engine(postgres_database())
    try:
        pid = _backend_pid(engine)
        _terminate(engine, pid)
        # No ping: the statement finds the session gone, as a database-down error (UNAVAILABLE for
        # callers, who retry); SQLAlchemy then replaces that generation of pooled connections.
        with pytest.raises(Exception) as lost:
            _backend_pid(engine)
        assert is_database_down(lost.value)
        assert _backend_pid(engine) != pid
    finally:
        engine.dispose()

"""Database conventions: SQLModel tables, one SQLite file per service by default (any SQLAlchemy
URL, PostgreSQL in production), Alembic migrations per service, blocking work off the event loop."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from sqlmodel import create_engine

from services.kit.logs import get_logger

__all__ = [
    "DatabaseUnreachable", "database_address", "insert_missing", "is_database_down", "make_engine",
    "run_alembic_env", "run_db", "upgrade", "version_table", "wait_for_database",
]  # fmt: skip

_log = get_logger("viarte.db")
# How long upgrade() waits for an unreachable database by default (compose restarts a service
# that gives up; the dev runner's health wait is shorter anyway).
DEFAULT_WAIT_SECONDS = 300.0
# A pooled PostgreSQL connection is pinged before use only after sitting idle this long (see
# make_engine): under load connections are reused within milliseconds and the ping would be one
# more round trip (and ~0.3 ms of CPU) per transaction.
PING_AFTER_IDLE_SECONDS = 1.0


class DatabaseUnreachable(RuntimeError):
    """The database did not answer within the wait; the message names host:port, never credentials."""

P = ParamSpec("P")
T = TypeVar("T")

# SQLSTATEs of a server that ended or refused the session: the request may be retried on a new
# connection. Class 08: connection exceptions. 25P03: idle_in_transaction_session_timeout (a
# replica frozen inside a transaction; psycopg raises it as InternalError, not OperationalError).
# 57P01/02/03/05: admin or crash shutdown, starting up, idle_session_timeout. 53300: too many
# connections.
_DOWN_SQLSTATES = frozenset({"25P03", "57P01", "57P02", "57P03", "57P05", "53300"})


def is_database_down(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is down, unreachable or ended the session (callers answer
    UNAVAILABLE ``DATABASE_UNAVAILABLE``), as opposed to a bug or bad data (INTERNAL). SQLite: a
    lock held past its busy timeout is an OperationalError too."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:  # SQLAlchemy saw the connection die under the statement
            return True
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        return sqlstate.startswith("08") or sqlstate in _DOWN_SQLSTATES
    return False


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers work while a writer commits; busy_timeout waits instead of failing.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # LIFO: the busiest connections are reused (their server processes and psycopg's prepared
    # statements are warm) and the rest stay idle, so the idle-ping below rarely runs under load.
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_use_lifo=True)
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """``pool_pre_ping`` for connections that sat in the pool ``idle_seconds`` or more (the server
    may have restarted or dropped them meanwhile); a connection used moments ago is trusted. If the
    server went away since anyway, that statement fails as a disconnect (callers answer UNAVAILABLE
    and retry) and SQLAlchemy replaces every pooled connection of that generation, so one failed
    call, not one per pooled connection, pays for a restart under load."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:
            record.info["viarte_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("viarte_idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # new, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool reconnects and tries the checkout again
            raise DisconnectionError(f"idle connection failed its ping: {type(exc).__name__}") from exc


def insert_missing(session: Session, model: Any, key: str, /, **values: Any) -> None:
    """``INSERT ... ON CONFLICT (key) DO NOTHING``: creates a row that concurrent transactions, in this
    process or another replica, may create too. The first step of every shared limit (throttles,
    rate buckets, quota owners): insert the row if missing, then lock it (``session.get(...,
    with_for_update=True, populate_existing=True)``; PostgreSQL: ``SELECT ... FOR UPDATE``) and decide.
    Inserting first also makes SQLite take its write lock at once, so the transaction never has to
    upgrade a read lock under concurrency (which fails with "database is locked")."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    session.execute(insert(model).values(**values).on_conflict_do_nothing(index_elements=[key]))


def database_address(url: str | URL) -> str:
    """``host:port`` of a database URL for logs and errors (never the user or password)."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database or ":memory:")
    default_port = {"postgresql": 5432, "mysql": 3306}.get(parsed.get_backend_name(), 0)
    return f"{parsed.host or 'localhost'}:{parsed.port or default_port}"


def wait_for_database(target: Engine | str, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> None:
    """Returns once the database answers ``SELECT 1``; retries with a clear log line meanwhile
    (replicas and PostgreSQL start together, and a database restart must not need a service
    restart). Raises :class:`DatabaseUnreachable` after ``wait_seconds``."""
    engine = create_engine(target, poolclass=NullPool) if isinstance(target, str) else target
    address = database_address(engine.url)
    deadline = time.monotonic() + wait_seconds
    delay, attempts, last_logged = 0.2, 0, -1e9
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                if attempts:
                    _log.info(f"database reachable at {address}", database=address, attempts=attempts)
                return
            except (OperationalError, DBAPIError) as exc:
                attempts += 1
                now = time.monotonic()
                if now >= deadline:
                    raise DatabaseUnreachable(
                        f"database unreachable at {address} after {wait_seconds:g}s ({_first_line(exc)})"
                    ) from None
                if now - last_logged >= 10 or attempts == 1:  # the first failure, then every 10 s
                    _log.warning(
                        f"database unreachable at {address}, retrying",
                        database=address, attempts=attempts, error=_first_line(exc),
                    )  # fmt: skip
                    last_logged = now
                time.sleep(min(delay, max(deadline - now, 0.0)))
                delay = min(delay * 2, 2.0)
    finally:
        if isinstance(target, str):
            engine.dispose()


def _first_line(exc: BaseException) -> str:
    # The driver's own message (refused, timeout, auth failed for a user name); DSNs are not in it.
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0][:200] if lines else type(orig).__name__


def migration_lock_key(migrations_dir: Path) -> int:
    """The advisory lock key of one service's migrations (services may share one database)."""
    return zlib.crc32(f"viarte-migrations:{version_table(migrations_dir)}".encode())


def upgrade(engine: Engine, migrations_dir: Path, *, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> None:
    """Apply the service's Alembic migrations up to head on ``engine``, once the database answers.
    On PostgreSQL a transaction-scoped advisory lock serialises N replicas starting together: the
    first migrates, the others wait on the lock and then find the schema at head."""
    wait_for_database(engine, wait_seconds)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": migration_lock_key(migrations_dir)})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def version_table(script_location: str | Path) -> str:
    """``alembic_version_<service>``: services sharing one database keep separate histories."""
    return f"alembic_version_{Path(script_location).resolve().parent.name}"


def run_alembic_env(target_metadata: Any) -> None:
    """The body of every service's ``migrations/env.py``: online migrations on the connection that
    :func:`upgrade` passes in (or the URL given with ``alembic -x url=...``)."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        url = context.get_x_argument(as_dictionary=True)["url"]
        with make_engine(url).begin() as own:
            _migrate(context, own, target_metadata)
    else:
        _migrate(context, connection, target_metadata)


def _migrate(context: Any, connection: Any, target_metadata: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table(context.config.get_main_option("script_location") or "."),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking database work in a thread so the event loop keeps serving streams."""
    return await asyncio.to_thread(fn, *args, **kwargs)

"""Cross-replica wake-ups over PostgreSQL LISTEN/NOTIFY.

Every write that other replicas must react to sends ``pg_notify`` in the same transaction (delivered
on commit, never for a rolled-back write): new events of a job (watchers re-read the stored log, so
a notification carries only ``job id + last sequence`` and may be lost or coalesced without losing
an event), a job queued (an idle replica dispatches at once) and a cancel request (the replica
running the job stops it). Each replica holds ONE listening connection (psycopg 3, autocommit) and
reconnects with backoff; while it is down the job service falls back to polling every
``poll_seconds``, and after every (re)connect it wakes everything, since notifications sent
meanwhile are gone. The channel name is fixed: NOTIFY reaches only sessions of the same database,
and every service has its own database.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import URL

from services.kit.logs import get_logger

__all__ = ["CHANNEL", "Listener", "Notice", "decode", "encode"]

_log = get_logger("viarte.jobs")

CHANNEL = "viarte_jobs"
EVENTS, QUEUED, CANCEL = "e", "q", "c"
_MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class Notice:
    kind: str  # EVENTS | QUEUED | CANCEL
    origin: str  # replica id of the writer (a replica ignores its own: it woke itself locally)
    job_id: str
    sequence: int


def encode(kind: str, origin: str, job_id: str, sequence: int = 0) -> str:
    # Far below NOTIFY's 8000-byte payload limit: ids are <= 36 chars, replica ids <= 128.
    return f"{kind}|{sequence}|{job_id}|{origin}"


def decode(payload: str) -> Notice | None:
    parts = payload.split("|", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    return Notice(kind=parts[0], sequence=int(parts[1]), job_id=parts[2], origin=parts[3])


def libpq_dsn(url: URL) -> str:
    """The engine's URL as a libpq connection string (psycopg's own form). Never logged."""
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))


class Listener:
    """One LISTEN connection of one replica; ``on_notice`` for each notice of another replica,
    ``on_connected`` after each (re)connect and each disconnect (catch up on what may have been
    missed; waiters switch between following notices and polling)."""

    def __init__(
        self, url: URL, replica_id: str, on_notice: Callable[[Notice], None],
        on_connected: Callable[[], None], *, keepalive_seconds: float = 2.0,
    ) -> None:
        self._dsn = libpq_dsn(url)
        self._replica_id = replica_id
        self._on_notice = on_notice
        self._on_connected = on_connected
        self._keepalive = keepalive_seconds
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._down_logged = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: poll meanwhile, reconnect
                if self.connected.is_set():
                    backoff = 0.1  # it was up: retry soon
                    self.connected.clear()
                    self._on_connected()  # waiters re-check now and poll until it is back
                if not self._down_logged:  # one line per outage, without the DSN
                    _log.warning("job_listener_disconnected", error=type(exc).__name__,
                                 fallback="polling", replica=self._replica_id)
                    self._down_logged = True
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _listen(self) -> None:
        import psycopg  # the PostgreSQL driver; SQLite deployments never start a listener

        conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True, connect_timeout=5)
        async with conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self.connected.set()
            self._down_logged = False
            _log.info("job_listener_connected", replica=self._replica_id)
            self._on_connected()
            while True:
                # notifies() returns after the timeout; the SELECT 1 in between notices a connection
                # that died silently (no RST), so the fallback poll and reconnect start promptly.
                async for n in conn.notifies(timeout=self._keepalive):
                    notice = decode(n.payload)
                    if notice is not None and notice.origin != self._replica_id:
                        self._on_notice(notice)
                await asyncio.wait_for(conn.execute("SELECT 1"), self._keepalive)

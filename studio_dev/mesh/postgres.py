"""The dev mesh's embedded PostgreSQL: one local cluster, one database per service.

``initdb`` runs once under ``<state_dir>/postgres`` (later starts reuse the data, like the SQLite
files); each start picks a free port on 127.0.0.1 and creates the services' databases that are
missing. PostgreSQL refuses to run as root: as root every server binary runs as the ``postgres``
user (``runuser -u postgres --``) in a folder that user owns. When the state folder is not
reachable by that user (a private 0700 temp folder, say), the cluster lives in a folder of its own
under the system temp dir and ``<state_dir>/postgres`` links to it.

Dev only: ``trust`` authentication on loopback, no password; production uses its own server
(deploy/compose.yaml).
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from services.kit.ports import free_port

__all__ = ["EmbeddedPostgres", "PostgresError", "find_bin_dir"]

SUPERUSER = "postgres"
# Dev tuning: every replica of every service keeps a pool (10 + 20 overflow) plus its listeners.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    # No Unix socket: its path would live under the state folder and may pass the 107-byte limit.
    "unix_socket_directories": "''",
    "max_connections": "400",
    # A commit returns before its WAL reaches disk: a crash loses the last few dev transactions,
    # never consistency; close to SQLite's synchronous=NORMAL that the single-process mesh uses.
    "synchronous_commit": "off",
    "log_min_messages": "warning",
}


class PostgresError(RuntimeError):
    """initdb or the server failed; the message carries the tail of its log."""


def find_bin_dir(configured: str = "") -> Path:
    """Where initdb/pg_ctl live: the configured folder, the newest Debian install, or PATH."""
    if configured:
        return Path(configured)
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if dirs:
        return Path(dirs[-1])
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise PostgresError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL "
        "(apt-get install postgresql) or set VIARTE_MESH_POSTGRES_BIN_DIR"
    )


def _as_root() -> bool:
    return os.geteuid() == 0


class EmbeddedPostgres:
    """``await start()`` → ``url(database)`` for each service; ``await stop()`` with the mesh."""

    def __init__(self, state_root: Path, *, bin_dir: str = "", port: int = 0) -> None:
        self.link = state_root / "postgres"
        self.bin_dir = find_bin_dir(bin_dir)
        self.port = port or free_port()
        self.base = self._base_dir()
        self.pid: int | None = None

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3) of one database; no password (trust on loopback, dev only)."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.address}/{database}"

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, databases: Iterable[str]) -> None:
        await asyncio.to_thread(self._start_sync, tuple(databases))

    async def stop(self, wait_seconds: float = 30.0) -> None:
        await asyncio.to_thread(self._stop_sync, wait_seconds)

    def _start_sync(self, databases: tuple[str, ...]) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self._run("pg_ctl", "-D", str(self.data_dir), "status").returncode == 0:
            # A server left over by a supervisor that was killed: restart it on this start's port.
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", timeout=60)
        started = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "-t", "60",
            "-o", f"-p {self.port}", "start", timeout=90,
        )  # fmt: skip
        if started.returncode != 0:
            raise PostgresError(f"pg_ctl start failed: {started.stderr.strip()}\n{self._log_tail()}")
        self.pid = self._postmaster_pid()
        self._create_databases(databases)

    def _stop_sync(self, timeout: float) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        stopped = self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", f"{int(timeout)}", "stop",
                            timeout=timeout + 10)  # fmt: skip
        if stopped.returncode != 0:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=30)

    # -- helpers ----------------------------------------------------------------------------
    def _base_dir(self) -> Path:
        """The cluster's folder: <state>/postgres, or what it links to (see the module docstring)."""
        if self.link.is_symlink():
            target = self.link.resolve()
            if target.is_dir():
                return target
            self.link.unlink()  # the temp folder it pointed to was cleaned up: start afresh
        self.link.parent.mkdir(parents=True, exist_ok=True)
        if not self.link.exists():
            self.link.mkdir()
        if not _as_root():
            return self.link
        shutil.chown(self.link, SUPERUSER, SUPERUSER)
        if self._reachable(self.link):
            return self.link
        self.link.rmdir()
        base = Path(tempfile.mkdtemp(prefix="viarte-mesh-pg-"))
        shutil.chown(base, SUPERUSER, SUPERUSER)
        self.link.symlink_to(base)
        return base

    def _reachable(self, path: Path) -> bool:
        probe = subprocess.run(
            ["runuser", "-u", SUPERUSER, "--", "test", "-w", str(path)], capture_output=True
        )
        return probe.returncode == 0

    def _command(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / tool), *args]
        # PostgreSQL refuses to run as root; as any other user it runs as that user.
        return ["runuser", "-u", SUPERUSER, "--", *cmd] if _as_root() else cmd

    def _run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._command(tool, *args), capture_output=True, text=True, timeout=timeout)

    def _initdb(self) -> None:
        done = self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8",
                         "--no-instructions", timeout=180)  # fmt: skip
        if done.returncode != 0:
            raise PostgresError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        lines = "".join(f"{key} = {value}\n" for key, value in SETTINGS.items())
        conf = self.data_dir / "postgresql.conf"
        # Written by the user that owns the file (root writes as root, which keeps postgres' ownership).
        with conf.open("a") as fh:
            fh.write("\n# viarte dev mesh\n" + lines)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _create_databases(self, databases: tuple[str, ...]) -> None:
        import psycopg

        dsn = f"postgresql://{SUPERUSER}@{self.address}/postgres"
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in databases:
                if name not in existing:
                    # Names are the mesh's own service names (identifiers), quoted anyway.
                    conn.execute(f'CREATE DATABASE "{name}"')

    def _log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

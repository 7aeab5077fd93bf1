"""deploy/postgres/init-databases.sh against a real PostgreSQL server: one role and database per
service from the same secret files the services read; each service's Alembic migrations then run
under its own role, and a role cannot open another service's database."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.kit.db import make_engine, upgrade
from services.kit.ports import free_port
from tests.deploy.helpers import DEPLOY, REPO, load_script

pytestmark = pytest.mark.postgres

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
SUPERUSER_PASSWORD = "pg-" + os.urandom(8).hex()


def _as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@pytest.fixture(scope="module")
def postgres() -> Iterator[int]:
    """A PostgreSQL cluster with password (scram) authentication, as the official image sets it up."""
    if not PG_BIN:
        pytest.fail("PostgreSQL server binaries missing: scripts/bootstrap.sh installs them")
    bin_dir = Path(PG_BIN[-1])
    base = Path(tempfile.mkdtemp(prefix="viarte-deploy-pg-"))
    pwfile = base / "pw"
    pwfile.write_text(SUPERUSER_PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres(str(bin_dir / "initdb"), "-D", str(base / "data"), "-U", "postgres", "--no-sync",
                     "--auth=scram-sha-256", f"--pwfile={pwfile}"),
        check=True, capture_output=True, timeout=120,
    )
    options = f"-p {port} -h 127.0.0.1 -k {base} -F -c fsync=off"
    subprocess.run(
        _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "log"), "-w", "-o", options,
                     "start"),
        check=True, capture_output=True, timeout=90,
    )
    try:
        yield port
    finally:
        subprocess.run(_as_postgres(str(bin_dir / "pg_ctl"), "-D", str(base / "data"), "-m", "immediate", "stop"),
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_init_script_creates_isolated_databases_the_services_migrate(postgres: int, tmp_path: Path) -> None:
    make = load_script(DEPLOY / "make_secrets.py")
    secrets = tmp_path / "secrets"
    make.make_secrets(secrets)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "SECRETS_DIR": str(secrets), "POSTGRES_USER": "postgres",
           "PGHOST": "127.0.0.1", "PGPORT": str(postgres), "PGPASSWORD": SUPERUSER_PASSWORD}
    result = subprocess.run(["sh", str(DEPLOY / "postgres" / "init-databases.sh")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

    def local(url: str) -> str:
        return url.replace("@postgres:5432/", f"@127.0.0.1:{postgres}/")

    urls = {db: local((secrets / f"{db}_database_url").read_text()) for db in make.DATABASES}
    for db, url in urls.items():
        engine = make_engine(url)
        try:
            upgrade(engine, REPO / "services" / db / "migrations")
            with engine.connect() as connection:
                tables = sa.inspect(connection).get_table_names()
                owner = connection.execute(sa.text("select current_user")).scalar_one()
            assert tables, f"{db}: migrations created no tables"
            assert owner == db
        finally:
            engine.dispose()

    # auth's role (and password) cannot open storage's database; a wrong password is refused.
    auth_password = (secrets / "auth_db_password").read_text()
    for url in (
        f"postgresql+psycopg://auth:{auth_password}@127.0.0.1:{postgres}/storage",
        f"postgresql+psycopg://auth:wrong@127.0.0.1:{postgres}/auth",
    ):
        engine = sa.create_engine(url)
        with pytest.raises(sa.exc.OperationalError):
            engine.connect().close()
        engine.dispose()

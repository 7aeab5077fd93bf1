"""Create the secret files the compose deployment mounts (deploy/secrets/, git-ignored).

    python deploy/make_secrets.py [--dir deploy/secrets] [--rotate NAME ...]

Random values for everything the mesh generates itself (internal secret, database passwords, S3
keys, the first admin's password); empty files for the keys you bring (Groq, Hugging Face) — fill
those in. Existing files are kept, so running it again is safe; ``--rotate NAME`` replaces one
(see deploy/README.md, "Key rotation", for the order of restarts). Files derived from others (the
database URLs, SeaweedFS's identities file and security.toml) are always rewritten from their sources.

The folder is made 0700 (nobody else on the host can read it) and the files 0644, because compose
bind-mounts each file into /run/secrets/ with its host mode and the services run as uid 10001.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DATABASES", "GENERATED", "PROVIDED", "main", "make_secrets"]

DEFAULT_DIR = Path(__file__).resolve().parent / "secrets"
# One PostgreSQL database and role per service: each service owns its tables.
DATABASES = ("auth", "storage", "inference", "render", "account")
GENERATED = (
    "internal_secret",
    "postgres_password",
    "s3_access_key",
    "s3_secret_key",
    # SeaweedFS's own HTTP APIs (volume writes, filer reads/writes) require JWTs signed with keys
    # derived from this one: see seaweedfs_security.toml below.
    "s3_jwt_key",
    "admin_password",
    # Seals the account service's stored webhook secrets: rotating it makes every endpoint's secret
    # unreadable (endpoints must rotate theirs afterwards).
    "account_webhook_key",
    *(f"{db}_db_password" for db in DATABASES),
)
# Brought by the operator; empty means "feature off" (assistant) or "public models only" (hub).
PROVIDED = ("groq_api_key", "hf_token")


def _random(name: str) -> str:
    # URL-safe without escaping (database URLs, S3 keys): hex only; the access key is an identifier.
    return f"viarte{secrets.token_hex(6)}" if name == "s3_access_key" else secrets.token_hex(32)


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o644)


def _seaweedfs_security(root: str) -> str:
    """SeaweedFS security.toml: the volume servers accept writes only with a JWT from the master and
    reads only with one signed with the read key, the filer reads and writes only with one from the
    S3 gateway (same derivation as the embedded launcher, services/storage/s3server.py `jwt_env`)."""

    def derive(purpose: str) -> str:
        return hashlib.sha256(f"{purpose}:{root}".encode()).hexdigest()

    return (
        f'[jwt.signing]\nkey = "{derive("volume-write")}"\nexpires_after_seconds = 10\n\n'
        f'[jwt.signing.read]\nkey = "{derive("volume-read")}"\nexpires_after_seconds = 10\n\n'
        f'[jwt.filer_signing]\nkey = "{derive("filer-write")}"\nexpires_after_seconds = 10\n\n'
        f'[jwt.filer_signing.read]\nkey = "{derive("filer-read")}"\nexpires_after_seconds = 10\n'
    )


def make_secrets(directory: Path, rotate: Sequence[str] = ()) -> list[Path]:
    unknown = set(rotate) - set(GENERATED)
    if unknown:
        raise ValueError(f"cannot rotate {sorted(unknown)}: only {', '.join(GENERATED)}")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    written: list[Path] = []
    for name in GENERATED:
        path = directory / name
        if name in rotate or not path.exists():
            _write(path, _random(name))
            written.append(path)
    for name in PROVIDED:
        path = directory / name
        if not path.exists():
            _write(path, "")
            written.append(path)
    value = {n: (directory / n).read_text().strip() for n in GENERATED}
    for db in DATABASES:
        url = f"postgresql+psycopg://{db}:{value[f'{db}_db_password']}@postgres:5432/{db}"
        _write(directory / f"{db}_database_url", url)
    identities = {
        "identities": [
            {
                "name": "viarte-storage",
                "credentials": [{"accessKey": value["s3_access_key"], "secretKey": value["s3_secret_key"]}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    _write(directory / "s3_identities.json", json.dumps(identities, indent=2) + "\n")
    _write(directory / "seaweedfs_security.toml", _seaweedfs_security(value["s3_jwt_key"]))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/make_secrets.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--rotate", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    for path in make_secrets(args.dir, args.rotate):
        print(f"wrote {path}")
    empty = [n for n in PROVIDED if not (args.dir / n).read_text().strip()]
    if empty:
        print(f"fill in (optional): {', '.join(str(args.dir / n) for n in empty)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

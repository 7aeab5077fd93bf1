"""Ed25519 signing keys: generation, rotation without downtime, and the public keys that verify.

One key is active and signs new tokens. Rotation makes a new key active and retires the old one
with `not_after = now + longest access-token lifetime + leeway`, so every token it signed keeps
verifying until it expires anyway; after that the key disappears from ListPublicKeys and from
verification. Verifiers cache keys by `kid` and fetch a new kid the first time they see it.

Replicas share the key table: creating or rotating the active key happens under a database lock
with the decision re-taken inside it, so replicas starting (or coming due) together make one key,
not one each; every replica wakes when the active key comes due and adopts whichever key won; a
replica that meets a kid it has not loaded (signed by another replica) reloads the table.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from datetime import datetime, timedelta

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.auth.models import SigningKeyRecord, as_utc, utcnow
from services.kit.db import run_db
from services.kit.tokens import SigningKey, VerificationKey

__all__ = ["KeyStore", "jwk_thumbprint"]

# pg_advisory_xact_lock key serialising key creation and rotation across replicas.
_ROTATION_LOCK = 0x7669617274650002
# A kid nobody has loaded reloads the table at most this often (unknown kids are also what forged
# tokens carry: they must not turn into one query each).
_UNKNOWN_KID_RELOAD_SECONDS = 1.0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(public_raw: bytes) -> str:
    """RFC 7638 thumbprint of an Ed25519 OKP key: a stable, collision-free `kid`."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(public_raw)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    return _b64url(hashlib.sha256(canonical).digest())


class KeyStore:
    """Signing keys persisted in the auth database and cached in memory.

    It is also the auth service's own `services.kit.auth.KeySource`: the auth server verifies
    tokens against its key table directly instead of calling ListPublicKeys on itself.
    """

    def __init__(self, engine: Engine, rotation_period: timedelta, retire_grace: timedelta) -> None:
        self.engine = engine
        self.rotation_period = rotation_period
        # How long a retired key keeps verifying: the longest token lifetime plus clock leeway.
        self.retire_grace = retire_grace
        self._lock = threading.Lock()
        self._active: SigningKey | None = None
        self._active_created: datetime | None = None
        self._verify: dict[str, VerificationKey] = {}
        self._unknown_reload_at = 0.0

    # -- lifecycle (blocking: call through run_db) ---------------------------------------------
    def ensure_active(self) -> SigningKey:
        """Creates the first key, or rotates when the active one is due; otherwise adopts the table's
        active key (which another replica may have made). Safe to call from N replicas at once."""
        self.reload()
        if not self._due():
            return self.active
        with Session(self.engine) as s, s.begin():
            if s.get_bind().dialect.name == "postgresql":
                s.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ROTATION_LOCK})
            # Decide again under the lock: the replica that held it before may have rotated already.
            current = s.exec(
                select(SigningKeyRecord)
                .where(col(SigningKeyRecord.retire_time).is_(None))
                .order_by(col(SigningKeyRecord.create_time).desc())
            ).first()
            created = as_utc(current.create_time) if current is not None else None
            if created is None or utcnow() - created >= self.rotation_period:
                self._rotate_in(s)
        self.reload()
        return self.active

    def rotate(self) -> SigningKey:
        """A new active key now, due or not (the previous one retires and verifies until its tokens
        have expired)."""
        with Session(self.engine) as s, s.begin():
            if s.get_bind().dialect.name == "postgresql":
                s.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ROTATION_LOCK})
            self._rotate_in(s)
        self.reload()
        return self.active

    def seconds_until_due(self) -> float:
        """How long the loaded active key has before rotation (0 when due or missing)."""
        created = self._active_created
        if self._active is None or created is None:
            return 0.0
        return max(0.0, (created + self.rotation_period - utcnow()).total_seconds())

    def _due(self) -> bool:
        return self.seconds_until_due() <= 0

    def _rotate_in(self, s: Session) -> None:
        now = utcnow()
        private = Ed25519PrivateKey.generate()
        public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        row = SigningKeyRecord(
            kid=jwk_thumbprint(public_raw),
            private_key=private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()),
            public_key=public_raw,
            create_time=now,
        )
        s.execute(
            sa.update(SigningKeyRecord)
            .where(col(SigningKeyRecord.retire_time).is_(None))
            .values(retire_time=now, not_after=now + self.retire_grace)
        )
        s.add(row)

    def reload(self) -> None:
        now = utcnow()
        with Session(self.engine) as s:
            rows = s.exec(select(SigningKeyRecord).order_by(col(SigningKeyRecord.create_time))).all()
        active: SigningKey | None = None
        active_created: datetime | None = None
        verify: dict[str, VerificationKey] = {}
        for row in rows:
            public = Ed25519PublicKey.from_public_bytes(row.public_key)
            if row.retire_time is None:
                active = SigningKey(row.kid, Ed25519PrivateKey.from_private_bytes(row.private_key))
                active_created = as_utc(row.create_time)
                verify[row.kid] = VerificationKey(row.kid, public)
                continue
            not_after = as_utc(row.not_after)
            if not_after is not None and not_after > now:
                verify[row.kid] = VerificationKey(row.kid, public, not_after.timestamp())
        with self._lock:
            self._active, self._active_created, self._verify = active, active_created, verify

    def prune(self) -> int:
        """Deletes retired keys past `not_after` (they can no longer verify anything)."""
        with Session(self.engine) as s, s.begin():
            result = s.execute(sa.delete(SigningKeyRecord).where(col(SigningKeyRecord.not_after) <= utcnow()))
        self.reload()
        return int(result.rowcount)  # type: ignore[attr-defined]

    # -- reads (memory only) -------------------------------------------------------------------
    @property
    def active(self) -> SigningKey:
        if self._active is None:
            raise RuntimeError("KeyStore.ensure_active() has not run")
        return self._active

    def verification_keys(self) -> list[VerificationKey]:
        """Keys that may verify a token now: the active one and retired ones before not_after."""
        now = utcnow().timestamp()
        with self._lock:
            keys = list(self._verify.values())
        return [k for k in keys if k.not_after is None or k.not_after > now]

    async def get(self, kid: str) -> VerificationKey | None:
        """`services.kit.auth.KeySource`: a retired key past not_after is unknown; a kid not loaded
        yet (another replica's new key) reloads the table, at most once a second."""
        with self._lock:
            key = self._verify.get(kid)
        if key is None and time.monotonic() - self._unknown_reload_at >= _UNKNOWN_KID_RELOAD_SECONDS:
            self._unknown_reload_at = time.monotonic()
            try:
                await run_db(self.reload)
            except sa.exc.SQLAlchemyError:
                pass  # database down: answer from the keys already loaded (the kid stays unknown)
            with self._lock:
                key = self._verify.get(kid)
        if key is None or (key.not_after is not None and key.not_after <= utcnow().timestamp()):
            return None
        return key

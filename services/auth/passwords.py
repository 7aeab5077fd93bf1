"""Email normalisation, password policy and bcrypt hashing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass

import bcrypt

__all__ = [
    "PasswordHasher",
    "PasswordPolicy",
    "normalize_email",
]

# A pragmatic subset of RFC 5321/5322: one "@", a dot-atom local part, a dotted domain of LDH labels
# (IDNs arrive as Unicode and are checked after IDNA encoding).
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

# Passwords that pass a length rule but appear at the top of every breach list.
# fmt: off
_COMMON = frozenset(
    {
        "password", "password1", "password12", "password123", "password1234", "passw0rd",
        "123456789", "1234567890", "12345678910", "0123456789", "qwertyuiop", "qwerty123",
        "qwerty1234", "1q2w3e4r5t", "iloveyou123", "letmein123", "welcome123", "admin12345",
        "administrator", "abcdefghij", "abc1234567", "changeme123", "trustno1234", "football123",
        "baseball123", "sunshine123", "princess123", "superman123", "11111111111", "aaaaaaaaaa",
    }
)
# fmt: on


def normalize_email(raw: str) -> str | None:
    """The canonical form of an address (NFKC, trimmed, lower-cased, IDNA domain), or None if invalid.

    The whole address is lower-cased: providers that treat the local part case-sensitively are
    vanishingly rare, and two accounts differing only in case are a support and phishing hazard.
    """
    email = unicodedata.normalize("NFKC", raw).strip().lower()
    if len(email) > 254 or email.count("@") != 1:
        return None
    local, domain = email.split("@")
    if not local or len(local) > 64 or not _LOCAL.match(local):
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return None
    return f"{local}@{domain}"


@dataclass(frozen=True)
class PasswordPolicy:
    """Length over composition rules (NIST SP 800-63B): long enough, not trivially guessable."""

    min_length: int = 10
    max_length: int = 256
    min_distinct: int = 4

    def problems(self, password: str, email: str = "") -> list[str]:
        found: list[str] = []
        if len(password) < self.min_length:
            found.append(f"must be at least {self.min_length} characters")
        if len(password) > self.max_length:
            found.append(f"must be at most {self.max_length} characters")
        if len(set(password)) < self.min_distinct:
            found.append(f"must contain at least {self.min_distinct} different characters")
        lowered = password.lower()
        if lowered in _COMMON:
            found.append("is too common")
        local = email.split("@", 1)[0]
        if local and len(local) >= 4 and local in lowered:
            found.append("must not contain the email address")
        return found


def _prehash(password: str) -> bytes:
    """bcrypt reads at most 72 bytes and stops at NUL; a keyed SHA-256, base64-encoded (44 bytes, no
    NUL), lets every character of a long password count. The key keeps leaked bare SHA-256 hashes of
    other sites from being "shucked" against these."""
    digest = hmac.new(b"viarte-bcrypt-sha256-v1", password.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest)


class PasswordHasher:
    """bcrypt with a configurable cost; verification of unknown accounts burns the same time."""

    def __init__(self, cost: int) -> None:
        if not 4 <= cost <= 31:
            raise ValueError("bcrypt cost must be between 4 and 31")
        self.cost = cost
        # Unknown emails are checked against this so both failure paths cost one bcrypt round.
        self._dummy = self.hash("dummy password for timing equalisation")

    def hash(self, password: str) -> str:
        return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=self.cost)).decode("ascii")

    def verify(self, password: str, hashed: str | None) -> bool:
        """Constant-time check (bcrypt.checkpw); `hashed=None` verifies against the dummy hash."""
        target = (hashed or self._dummy).encode("ascii")
        try:
            ok = bcrypt.checkpw(_prehash(password), target)
        except ValueError:
            return False
        return ok and hashed is not None

    def needs_rehash(self, hashed: str) -> bool:
        """True when the stored hash used a different cost (upgraded transparently at login)."""
        try:
            return int(hashed.split("$")[2]) != self.cost
        except (IndexError, ValueError):
            return True

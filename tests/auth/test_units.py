"""Pure parts of auth: email normalisation, password policy and hashing, throttling, client address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.auth.credentials import digest, digests_equal, display_prefix, new_api_key, new_refresh_token
from services.auth.passwords import PasswordHasher, PasswordPolicy, normalize_email
from services.auth.server import MIGRATIONS
from services.auth.throttle import BackoffRule, LoginThrottle, client_address, parse_networks
from services.kit.db import make_engine, upgrade


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Alice@Example.COM ", "alice@example.com"),
        ("a.b+tag@sub.example.org", "a.b+tag@sub.example.org"),
        ("\uff55\uff53\uff45\uff52@example.com", "user@example.com"),  # NFKC folds full-width letters
        ("jörg@bücher.de", None),  # non-ASCII local part refused
        ("jorg@bücher.de", "jorg@xn--bcher-kva.de"),  # IDN domain stored in ASCII form
        ("a..b@example.com", None),
        (".a@example.com", None),
        ("a@example", None),
        ("a@example.123", None),
        ("a@-x.com", None),
        ("a@@example.com", None),
        ("x" * 65 + "@example.com", None),
        ("", None),
    ],
)
def test_normalize_email(raw: str, expected: str | None) -> None:
    assert normalize_email(raw) == expected


def test_password_policy() -> None:
    policy = PasswordPolicy()
    assert policy.problems("correct horse battery") == []
    assert policy.problems("short") != []
    assert policy.problems("Password123") == ["is too common"]
    assert policy.problems("abababababab") != []  # too few distinct characters
    assert policy.problems("mallory-2026-secret", "mallory@example.com") == [
        "must not contain the email address"
    ]
    assert policy.problems("y" * 300) != []


def test_password_hasher() -> None:
    hasher = PasswordHasher(cost=4)
    hashed = hasher.hash("correct horse battery")
    assert hashed.startswith("$2b$04$")
    assert hasher.verify("correct horse battery", hashed)
    assert not hasher.verify("correct horse batterY", hashed)
    assert not hasher.verify("correct horse battery", None)  # the dummy hash never matches
    assert not hasher.verify("x", "not a bcrypt hash")
    # Beyond bcrypt's 72-byte limit every byte still counts (keyed SHA-256 pre-hash).
    long = "p" * 100
    assert not hasher.verify(long[:-1] + "q", hasher.hash(long))
    assert not hasher.needs_rehash(hashed) and PasswordHasher(cost=5).needs_rehash(hashed)
    with pytest.raises(ValueError):
        PasswordHasher(cost=3)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _throttle(tmp_path: Path, clock: FakeClock) -> LoginThrottle:
    engine = make_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    upgrade(engine, MIGRATIONS)
    return LoginThrottle(
        engine,
        account=BackoffRule(3, 1.0, 60.0, 900.0),
        address=BackoffRule(5, 1.0, 60.0, 900.0),
        service=BackoffRule(2, 1.0, 60.0, 900.0),
        clock=clock,
    )


def test_backoff_doubles_after_the_free_failures_and_is_capped() -> None:
    rule = BackoffRule(3, 1.0, 60.0, 900.0)
    assert [rule.delay(n) for n in range(1, 11)] == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60]


def test_throttle_backs_off_one_account_from_one_address_only(tmp_path: Path) -> None:
    clock = FakeClock()
    throttle = _throttle(tmp_path, clock)
    attacker = throttle.login_keys("victim@x.test", "203.0.113.9")
    owner = throttle.login_keys("victim@x.test", "198.51.100.1")
    assert [throttle.attempt(*attacker) for _ in range(3)] == [0, 0, 0]  # charged, all failed
    assert throttle.attempt(*attacker) == 1  # waits, and is not charged for waiting
    # The owner, elsewhere, is not slowed down at all; a success forgets the owner's key.
    assert throttle.attempt(*owner) == 0
    throttle.succeeded(*owner)
    clock.advance(1)
    assert throttle.attempt(*attacker) == 0  # the 4th failure...
    assert throttle.attempt(*attacker) == 2  # ...doubles the wait
    clock.advance(2)
    assert throttle.attempt(*attacker) == 0
    assert throttle.attempt(*attacker) == 4
    clock.advance(901)  # a quiet window: the key starts over
    assert throttle.attempt(*attacker) == 0


def test_throttle_address_budget_spans_accounts(tmp_path: Path) -> None:
    clock = FakeClock()
    throttle = _throttle(tmp_path, clock)
    for i in range(5):  # spraying: one guess per account from one address
        assert throttle.attempt(*throttle.login_keys(f"u{i}@x.test", "203.0.113.9")) == 0
    assert throttle.attempt(*throttle.login_keys("fresh@x.test", "203.0.113.9")) == 1
    assert throttle.attempt(*throttle.login_keys("fresh@x.test", "203.0.113.10")) == 0


def test_a_success_refunds_the_address_budget(tmp_path: Path) -> None:
    throttle = _throttle(tmp_path, FakeClock())
    for i in range(20):  # busy but honest address (a NAT): every login succeeds
        keys = throttle.login_keys(f"u{i}@x.test", "198.51.100.1")
        assert throttle.attempt(*keys) == 0
        throttle.succeeded(*keys)
    assert throttle.waiting(throttle.address_key("198.51.100.1")) == 0


def test_service_secret_guesses_are_keyed_by_address(tmp_path: Path) -> None:
    throttle = _throttle(tmp_path, FakeClock())
    for _ in range(2):
        throttle.charge(throttle.service_key("203.0.113.9"))
    assert throttle.waiting(throttle.service_key("203.0.113.9")) == 1
    assert throttle.waiting(throttle.service_key("10.0.0.5")) == 0


class FakeContext:
    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._peer, self._metadata = peer, metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def test_client_address_trusts_forwarded_for_only_from_trusted_proxies() -> None:
    forwarded = (("x-forwarded-for", "6.6.6.6, 198.51.100.7"),)
    envoy = parse_networks(["127.0.0.2"])
    assert client_address(FakeContext("ipv4:127.0.0.1:5555", forwarded), ()) == "127.0.0.1"  # type: ignore[arg-type]
    assert client_address(FakeContext("ipv4:127.0.0.1:5555", forwarded), envoy) == "127.0.0.1"  # type: ignore[arg-type]
    assert client_address(FakeContext("ipv4:127.0.0.2:5555", forwarded), envoy) == "198.51.100.7"  # type: ignore[arg-type]
    subnet = parse_networks(["10.0.0.0/8"])
    assert client_address(FakeContext("ipv4:10.9.8.7:1", forwarded), subnet) == "198.51.100.7"  # type: ignore[arg-type]
    # Envoy passes a client's own x-envoy-external-address through from "internal" addresses.
    chosen = (*forwarded, ("x-envoy-external-address", "203.0.113.5"))
    assert client_address(FakeContext("ipv4:10.9.8.7:1", chosen), subnet) == "198.51.100.7"  # type: ignore[arg-type]
    assert client_address(FakeContext("ipv6:[::1]:5555"), ()) == "::1"  # type: ignore[arg-type]
    bogus = (("x-forwarded-for", "not-an-ip"),)
    assert client_address(FakeContext("ipv4:10.0.0.1:1", bogus), subnet) == "10.0.0.1"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trusted_proxies"):
        parse_networks(["envoy"])


def test_opaque_credentials() -> None:
    key, refresh = new_api_key(), new_refresh_token()
    assert key.startswith("vk_") and refresh.startswith("rt_") and len(key) == len(refresh) == 46
    assert new_api_key() != key
    assert display_prefix(key) == key[:7]
    assert len(digest(key)) == 64 and digests_equal(digest(key), digest(key))
    assert not digests_equal(digest(key), digest(refresh))

"""Pure parts of auth: email normalisation, password policy and hashing, throttling, client address."""

from __future__ import annotations

import pytest

from services.auth.credentials import digest, digests_equal, display_prefix, new_api_key, new_refresh_token
from services.auth.passwords import PasswordHasher, PasswordPolicy, normalize_email
from services.auth.servicer import client_address
from services.auth.throttle import LoginThrottle, ThrottleRule


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
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_account_and_address() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(ThrottleRule(3, 60, 30), ThrottleRule(5, 60, 120), clock=clock)
    assert throttle.retry_after("a", "1.1.1.1") == 0
    throttle.record_failure("a", "1.1.1.1")
    throttle.record_failure("a", "1.1.1.2")
    assert throttle.retry_after("a", "1.1.1.3") == 0
    assert throttle.record_failure("a", "1.1.1.3") == 30
    assert throttle.retry_after("a", "9.9.9.9") == 30
    assert throttle.retry_after("b", "1.1.1.1") == 0
    clock.now += 31
    assert throttle.retry_after("a", "1.1.1.1") == 0
    # Failures age out of the window.
    throttle.record_failure("c", "2.2.2.2")
    throttle.record_failure("c", "2.2.2.2")
    clock.now += 61
    throttle.record_failure("c", "2.2.2.3")
    assert throttle.retry_after("c", "2.2.2.4") == 0
    # Success resets the account but not the address.
    for i in range(4):
        throttle.record_failure(f"spray{i}", "3.3.3.3")
    throttle.record_success("spray0")
    assert throttle.record_failure("d", "3.3.3.3") == 120
    assert throttle.retry_after("other", "3.3.3.3") == 120


def test_throttle_counts_attempts_in_flight() -> None:
    throttle = LoginThrottle(ThrottleRule(3, 60, 30), ThrottleRule(10, 60, 30), clock=FakeClock())
    for _ in range(3):
        assert throttle.retry_after("a", "1.1.1.1") == 0
        throttle.begin("a", "1.1.1.1")
    assert throttle.retry_after("a", "1.1.1.2") > 0  # three guesses are already being checked
    throttle.end("a", "1.1.1.1")
    throttle.record_success("a")
    assert throttle.retry_after("a", "1.1.1.2") == 0
    throttle.end("a", "1.1.1.1")
    throttle.end("a", "1.1.1.1")
    assert throttle._account._in_flight == {} and throttle._address._in_flight == {}


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(ThrottleRule(3, 60, 30), ThrottleRule(3, 60, 30), max_keys=10)
    for i in range(100):
        throttle.record_failure(f"user{i}", f"10.0.0.{i}")
    assert len(throttle._account._entries) == 10 and len(throttle._address._entries) == 10


class FakeContext:
    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._peer, self._metadata = peer, metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def test_client_address_trusts_forwarded_for_only_from_trusted_proxies() -> None:
    forwarded = (("x-forwarded-for", "6.6.6.6, 198.51.100.7"),)
    assert client_address(FakeContext("ipv4:127.0.0.1:5555", forwarded), ()) == "127.0.0.1"  # type: ignore[arg-type]
    assert client_address(FakeContext("ipv4:127.0.0.1:5555", forwarded), ("127.0.0.1",)) == "198.51.100.7"  # type: ignore[arg-type]
    assert client_address(FakeContext("ipv6:[::1]:5555"), ()) == "::1"  # type: ignore[arg-type]
    bogus = (("x-forwarded-for", "not-an-ip"),)
    assert client_address(FakeContext("ipv4:10.0.0.1:1", bogus), ("10.0.0.1",)) == "10.0.0.1"  # type: ignore[arg-type]


def test_opaque_credentials() -> None:
    key, refresh = new_api_key(), new_refresh_token()
    assert key.startswith("vk_") and refresh.startswith("rt_") and len(key) == len(refresh) == 46
    assert new_api_key() != key
    assert display_prefix(key) == key[:7]
    assert len(digest(key)) == 64 and digests_equal(digest(key), digest(key))
    assert not digests_equal(digest(key), digest(refresh))

"""Configuration of the auth service (environment prefix VIARTE_AUTH_, see services.kit.config)."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.config import Secret, ServiceConfig

__all__ = ["AuthConfig"]


@dataclass(frozen=True)
class AuthConfig(ServiceConfig):
    service_name = "auth"

    port: int = 50051
    metrics_port: int = 9101
    # Any SQLAlchemy URL; "" = sqlite:///<data_dir>/auth.db.
    database_url: str = ""
    # bcrypt work factor (2**cost rounds). 12 ≈ 250 ms on a server core; tests use 4.
    bcrypt_cost: int = 12
    access_token_ttl_seconds: int = 900
    # A refresh token lives this long unless rotated; the session (token family) ends at session_ttl.
    refresh_token_ttl_seconds: int = 30 * 86_400
    session_ttl_seconds: int = 90 * 86_400
    # A spent refresh token may be presented once more within this many seconds of its rotation when
    # its successor was never used: the client lost the response (a page reload, a dropped
    # connection) and retries. The retry's tokens replace the unused successor, which can no longer
    # be presented; a spent token whose successor was used, or one past the grace, revokes the family.
    refresh_retry_grace_seconds: int = 30
    service_token_ttl_seconds: int = 600
    # The active signing key is replaced this often; the old one verifies until its tokens expired.
    signing_key_rotation_seconds: int = 7 * 86_400
    # How often the server checks whether the key is due (and prunes old keys and expired sessions).
    key_check_interval_seconds: float = 3600.0
    # Cache lifetimes handed to verifiers (ListPublicKeys, VerifyApiKey): bound revocation lag.
    public_keys_max_age_seconds: int = 300
    api_key_max_age_seconds: int = 30
    # Login throttling (services/auth/throttle.py): failures per (account, client address) and per
    # client address are free up to these counts, then each one doubles the wait from
    # login_backoff_base_seconds up to login_backoff_max_seconds (RetryInfo says how long); a key
    # without failures for login_window_seconds starts over. Never a lockout of the account itself.
    login_window_seconds: int = 900
    login_max_failures_per_account: int = 5
    login_max_failures_per_address: int = 50
    login_backoff_base_seconds: float = 1.0
    login_backoff_max_seconds: float = 300.0
    # Wrong IssueServiceToken secrets per client address before the backoff starts.
    service_secret_max_failures: int = 10
    # CIDRs of the proxies (the Envoy gateway) whose x-forwarded-for hop names the real client;
    # from any other peer those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # Created as an admin at startup if the email has no account yet (never from Register, which
    # does not prove ownership of an address).
    bootstrap_admin_email: str = ""
    bootstrap_admin_password: Secret = Secret("")

    def database(self) -> str:
        return self.database_url or self.sqlite_url()

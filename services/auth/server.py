"""Builds the auth service: database + migrations, signing keys, servicers, the kit server."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

import grpc
from sqlalchemy.engine import Engine

from services.auth.config import AuthConfig
from services.auth.feed import RevocationFeed
from services.auth.keys import KeyStore
from services.auth.passwords import PasswordHasher, normalize_email
from services.auth.servicer import AuthInternalServicer, AuthServicer, LocalApiKeyResolver, database
from services.auth.store import EmailTakenError, Store
from services.auth.throttle import BackoffRule, LoginThrottle, parse_networks
from services.kit.auth import Authenticator
from services.kit.db import make_engine, run_db, upgrade
from services.kit.logs import get_logger
from services.kit.server import Service, add_shutdown_hook, build_server

__all__ = ["MIGRATIONS", "build"]

MIGRATIONS = Path(__file__).parent / "migrations"
_log = get_logger("viarte.auth")


def _throttle(config: AuthConfig, engine: Engine) -> LoginThrottle:
    window, base, most = (
        float(config.login_window_seconds),
        config.login_backoff_base_seconds,
        config.login_backoff_max_seconds,
    )
    return LoginThrottle(
        engine,
        account=BackoffRule(config.login_max_failures_per_account, base, most, window),
        address=BackoffRule(config.login_max_failures_per_address, base, most, window),
        service=BackoffRule(config.service_secret_max_failures, base, most, window),
    )


def _bootstrap_admin(config: AuthConfig, store: Store, hasher: PasswordHasher) -> None:
    """Creates the configured first admin once (idempotent across restarts and replicas)."""
    email = normalize_email(config.bootstrap_admin_email) if config.bootstrap_admin_email else None
    if email is None or not config.bootstrap_admin_password or store.user_by_email(email) is not None:
        return
    try:
        store.create_user(email, hasher.hash(config.bootstrap_admin_password.reveal()), "admin", "admin")
    except EmailTakenError:
        return
    _log.info("auth.bootstrap_admin_created", email=email)


async def _maintenance(keys: KeyStore, store: Store, throttle: LoginThrottle, interval: float) -> None:
    """Rotates the signing key when it is due, drops keys that can no longer verify anything and
    purges expired sessions."""
    while True:
        # Wake when the active key comes due too: every replica then takes the rotation lock, one
        # rotates and the others adopt its key, instead of signing with a retired one for an hour.
        await asyncio.sleep(min(interval, max(1.0, keys.seconds_until_due())))
        try:
            await run_db(keys.ensure_active)
            await run_db(keys.prune)
            await run_db(store.purge_expired)
            await run_db(throttle.purge)
        except Exception:  # the database may be briefly down; try again next round
            _log.exception("auth.maintenance_failed")


async def build(config: AuthConfig) -> tuple[grpc.aio.Server, int]:
    """1. database + migrations, 2. signing keys, 3. bootstrap admin, 4. servicers on the kit server."""
    engine = make_engine(config.database())
    await run_db(upgrade, engine, MIGRATIONS)
    # A retired key must outlive every token it signed (plus the verifiers' clock leeway).
    grace = timedelta(seconds=max(config.access_token_ttl_seconds, config.service_token_ttl_seconds) + 60)
    keys = KeyStore(engine, timedelta(seconds=config.signing_key_rotation_seconds), grace)
    await run_db(keys.ensure_active)
    # A revocation outlives every credential it names (tokens, verifiers' API-key caches).
    store = Store(engine, revocation_ttl=grace + timedelta(seconds=config.api_key_max_age_seconds))
    hasher = await run_db(PasswordHasher, config.bcrypt_cost)
    await run_db(_bootstrap_admin, config, store, hasher)
    parse_networks(config.trusted_proxies)  # a malformed CIDR fails the start, not the first login
    throttle = _throttle(config, engine)
    feed = RevocationFeed(store, database)
    servicer = AuthServicer(config, store, keys, hasher, throttle, feed)
    internal = AuthInternalServicer(config, store, keys, throttle, feed)
    authenticator = Authenticator(config, key_source=keys, api_key_resolver=LocalApiKeyResolver(store))
    server, port = await build_server(
        config,
        [
            Service(servicer, anonymous=frozenset({"Register", "Login", "Refresh", "ListPublicKeys"})),
            Service(internal, internal=True, anonymous=frozenset({"IssueServiceToken"})),
        ],
        authenticator=authenticator,
    )
    maintenance = asyncio.create_task(_maintenance(keys, store, throttle, config.key_check_interval_seconds))

    async def _close() -> None:
        maintenance.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await maintenance
        await run_db(engine.dispose)

    add_shutdown_hook(server, _close)
    # Exposed for tests and the bench (key rotation, direct store checks); not part of the API.
    server.auth_keys = keys
    server.auth_store = store
    return server, port

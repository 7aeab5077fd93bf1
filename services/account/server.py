"""Builds the account service: database + migrations, the servicers, the webhook dispatcher."""

from __future__ import annotations

from pathlib import Path

import grpc

from services.account.config import AccountConfig
from services.account.dispatcher import Dispatcher
from services.account.prices import PriceList
from services.account.secretbox import SecretBox
from services.account.store import AccountStore
from services.account.usage import AccountInternalServicer, UsageServicer
from services.account.webhooks import WebhookServicer
from services.kit.db import make_engine, run_db, upgrade
from services.kit.pagination import PageTokens
from services.kit.server import Service, add_shutdown_hook, build_server

__all__ = ["MIGRATIONS", "build"]

MIGRATIONS = Path(__file__).parent / "migrations"


async def build(config: AccountConfig) -> tuple[grpc.aio.Server, int]:
    """1. database + migrations, 2. servicers on the kit server, 3. the webhook dispatcher (which
    resumes the outbox left by a previous run at once)."""
    prices = PriceList.from_config(config)  # a malformed rate fails the start, not a request
    engine = make_engine(config.database)
    await run_db(upgrade, engine, MIGRATIONS, wait_seconds=config.database_wait_seconds)
    store = AccountStore(engine)
    box = SecretBox.for_config(config)
    tokens = PageTokens.for_service(config)
    dispatcher = Dispatcher(config, store, box)
    server, port = await build_server(
        config,
        [
            Service(UsageServicer(store, prices, tokens)),
            Service(WebhookServicer(config, store, box, tokens, dispatcher.wake)),
            Service(AccountInternalServicer(store, prices, dispatcher.wake,
                                            retention_seconds=config.admission_retention_seconds), internal=True),
        ],
    )
    dispatcher.start()

    async def close() -> None:
        await dispatcher.stop()
        await run_db(engine.dispose)

    add_shutdown_hook(server, close)
    server.account_dispatcher = dispatcher  # exposed for tests (not part of the API)
    return server, port

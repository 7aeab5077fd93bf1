"""The per-user assistant limit across replicas: two assistant servers, each with its own engine, on
one database (PostgreSQL, and SQLite as the single-host case) share each user's bucket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlmodel import Session, select

from services.inference.assistant.ratelimit import RateBucket, UserRateLimiter
from services.inference.server import MIGRATIONS
from services.kit.db import make_engine, upgrade
from services.kit.errors import ServiceError
from tests.assistant.conftest import assistant_config, running_assistant
from tests.fakes.chat_server import FakeChatServer, Reply
from viarte.errors import from_rpc_error
from viarte.inference.v1 import assistant_pb2 as A

pytestmark = pytest.mark.timeout(120)

PER_MINUTE = 4


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inference.db'}"
    make: Callable[[], str] = request.getfixturevalue("postgres_database")
    return make()


async def _two_replicas(stack: AsyncExitStack, config: Any, url: str) -> list[Any]:
    # One after the other: the first applies the migrations.
    return [await stack.enter_async_context(running_assistant(config, url)) for _ in range(2)]


async def _enhance(stub: Any, user: Any) -> Any:
    try:
        return await stub.EnhancePrompt(A.EnhancePromptRequest(idea="cat"), metadata=user.metadata, timeout=30)
    except grpc.aio.AioRpcError as exc:
        return exc


async def test_limit_trips_after_the_same_count_across_two_replicas(
    auth_service: Any, fake_chat: FakeChatServer, user_factory: Any, database_url: str
) -> None:
    alice, bob = await user_factory(), await user_factory()
    fake_chat.script(*[Reply(content=json.dumps({"prompt": f"p{i}"})) for i in range(2 * PER_MINUTE)])
    config = assistant_config(auth_service, fake_chat, assistant_user_requests_per_minute=PER_MINUTE)
    async with AsyncExitStack() as stack:
        replicas = await _two_replicas(stack, config, database_url)
        # Alternating replicas: the budget is the one of a single server, not one per replica.
        for i in range(PER_MINUTE):
            answer = await _enhance(replicas[i % 2], alice)
            assert not isinstance(answer, grpc.aio.AioRpcError), answer
        for stub in replicas:
            answer = await _enhance(stub, alice)
            assert isinstance(answer, grpc.aio.AioRpcError), "a replica let the user past the limit"
            err = from_rpc_error(answer)
            assert (err.code, err.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
            assert err.retry_after is not None and 0 < err.retry_after <= 60 / PER_MINUTE
        # A concurrent burst spread over both replicas gets exactly one bucket's worth.
        burst = await asyncio.gather(*[_enhance(replicas[i % 2], bob) for i in range(3 * PER_MINUTE)])
        refused = [a for a in burst if isinstance(a, grpc.aio.AioRpcError)]
        assert len(burst) - len(refused) == PER_MINUTE
        assert {from_rpc_error(e).reason for e in refused} == {"RATE_LIMITED"}
    assert len(fake_chat.requests) == 2 * PER_MINUTE


async def test_bucket_refills_with_time_and_purges_full_buckets(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'inference.db'}")
    upgrade(engine, MIGRATIONS)
    now = [1_000_000.0]
    one, two = (UserRateLimiter(engine, 2, clock=lambda: now[0]) for _ in range(2))
    one.acquire("u")
    two.acquire("u")
    with pytest.raises(ServiceError) as refused:
        one.acquire("u")
    assert refused.value.reason == "RATE_LIMITED" and refused.value.retry_after == 30.0
    now[0] += 30.0  # one token back (2 per minute)
    two.acquire("u")
    with pytest.raises(ServiceError):
        one.acquire("u")
    now[0] -= 10.0  # a replica whose clock runs behind refills nothing
    with pytest.raises(ServiceError):
        two.acquire("u")
    now[0] += 100.0
    one.acquire("other")  # purges on the way (at most once a minute per process)
    with Session(engine) as s:  # "u" refilled completely, so its row went; "other" was just used
        assert set(s.exec(select(RateBucket.key)).all()) == {"assistant:other"}
    engine.dispose()

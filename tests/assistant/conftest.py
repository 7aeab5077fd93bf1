"""Assistant test plumbing: the fake chat-completions server and assistant servers over loopback."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
import pytest_asyncio

from services.inference.assistant.servicer import AssistantServicer
from services.inference.config import InferenceConfig
from services.inference.models.registry import load_registry
from services.inference.server import MIGRATIONS
from services.kit.config import Secret
from services.kit.db import make_engine, upgrade
from services.kit.server import Service, build_server, stop
from tests.fakes.chat_server import FakeChatServer
from viarte.inference.v1 import assistant_pb2_grpc


@pytest.fixture(scope="session")
def fake_chat() -> Iterator[FakeChatServer]:
    server = FakeChatServer().start()
    yield server
    server.stop()


@pytest.fixture
def chat(fake_chat: FakeChatServer) -> FakeChatServer:
    fake_chat.script()  # every test starts with an empty script and no recorded requests
    return fake_chat


def assistant_config(auth_service: Any, fake: FakeChatServer, **overrides: Any) -> InferenceConfig:
    values: dict[str, Any] = {
        "port": 0,
        "log_level": "WARNING",
        "auth_address": auth_service.address,
        "internal_secret": auth_service.config.internal_secret,
        "assistant_api_key": Secret("gsk-test-key"),
        "assistant_base_url": fake.base_url,
        "assistant_model": "llama-3.1-8b-instant",
        "assistant_timeout_seconds": 0.6,
        "assistant_max_retries": 1,
        "assistant_max_retry_wait_seconds": 0.5,
        "assistant_user_requests_per_minute": 1000,
    }
    values.update(overrides)
    return InferenceConfig(**values)


StubFactory = Callable[..., Awaitable[assistant_pb2_grpc.AssistantServiceStub]]


@asynccontextmanager
async def running_assistant(
    config: InferenceConfig, database_url: str | None = None
) -> AsyncIterator[assistant_pb2_grpc.AssistantServiceStub]:
    """An assistant server on its own database engine: `database_url` (several servers on one URL
    act as replicas), else a fresh SQLite file."""
    with tempfile.TemporaryDirectory(prefix="viarte-assistant-") as scratch:
        engine = make_engine(database_url or f"sqlite:///{scratch}/inference.db")
        upgrade(engine, MIGRATIONS)
        servicer = AssistantServicer(
            config.assistant, engine=engine, registry=load_registry().only(["tiny-wan", "tiny-modelscope"])
        )
        server, port = await build_server(config, [Service(servicer)])
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            yield assistant_pb2_grpc.AssistantServiceStub(channel)
        finally:
            await channel.close()
            await stop(server, grace=0.2)
            await servicer.close()
            engine.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def assistant(auth_service: Any, fake_chat: FakeChatServer) -> AsyncIterator[assistant_pb2_grpc.AssistantServiceStub]:
    async with running_assistant(assistant_config(auth_service, fake_chat)) as stub:
        yield stub


def with_overrides(config: InferenceConfig, **overrides: Any) -> InferenceConfig:
    return dataclasses.replace(config, **overrides)

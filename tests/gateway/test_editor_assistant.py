"""Magic Prompt and the assistant panel in Chromium: the real AssistantService (on an assistant-only
kit server, behind its own Envoy cluster) with a chat-completions stand-in for Groq, next to the mesh."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gateway.envoy import EnvoyProcess
from services.inference.assistant.servicer import AssistantServicer
from services.inference.config import InferenceConfig
from services.inference.models.registry import load_registry
from services.inference.server import MIGRATIONS
from services.kit.config import Secret
from services.kit.db import make_engine, upgrade
from services.kit.server import Service, build_server, stop
from tests.fakes.chat_server import FakeChatServer, Reply, ToolCall
from tests.gateway.browser import artifacts_dir, editor_gateway_config, run_script_async, skip_without_browser

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module")
def chat_stand_in() -> Iterator[FakeChatServer]:
    server = FakeChatServer().start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module")
async def assistant_gateway(
    mesh: Any, editor_dist: Path, envoy_factory: Any, tmp_path_factory: pytest.TempPathFactory, chat_stand_in
) -> AsyncIterator[EnvoyProcess]:
    skip_without_browser()
    mesh.require("auth", "storage", "inference", "render")
    endpoints = mesh.endpoints
    config = InferenceConfig(
        port=0,
        log_level="WARNING",
        auth_address=endpoints["auth"],
        assistant_api_key=Secret("gsk-test-key"),
        assistant_base_url=chat_stand_in.base_url,
        assistant_model="llama-3.1-8b-instant",
        assistant_user_requests_per_minute=1000,
    )
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('assistant')}/inference.db")
    upgrade(engine, MIGRATIONS)
    servicer = AssistantServicer(config.assistant, engine=engine, registry=load_registry().only(["tiny-wan", "tiny-modelscope"]))
    server, port = await build_server(config, [Service(servicer)])
    await server.start()
    gateway = editor_gateway_config(editor_dist, endpoints, assistant_address=f"127.0.0.1:{port}")
    envoy = await envoy_factory(gateway)
    await envoy.wait_healthy(["auth", "storage", "inference", "render", "assistant"], within=60)
    yield envoy
    await envoy.stop()
    await stop(server, grace=0.2)
    await servicer.close()
    engine.dispose()


async def test_magic_prompt_and_confirmed_assistant_action(
    assistant_gateway: EnvoyProcess, chat_stand_in
) -> None:
    enhanced = {
        "prompt": "A red fox trots through fresh snow at dawn, slow tracking shot",
        "negative_prompt": "blurry",
    }
    title = {
        "summary": "Add a holiday title",
        "track_index": 2,
        "text": "Holiday!",
        "start_seconds": 0,
        "duration_seconds": 2,
    }
    chat_stand_in.script(
        Reply(content=json.dumps(enhanced)),
        Reply(content="Here is a title for your cut.", tool_calls=(ToolCall("add_text", title),)),
    )
    result = await run_script_async("assistant", assistant_gateway.url, artifacts_dir("editor-assistant"), time_limit=180)
    assert result["consoleErrors"] == []
    assert result["enhancedPrompt"] == enhanced["prompt"]
    assert result["enhancedNegative"] == "blurry"
    assert result["answer"] == "Here is a title for your cut."  # streamed token by token into one bubble
    assert result["actionSummary"] == "Add a holiday title"
    assert result["textClipsBeforeApply"] == 0  # proposed, not applied
    assert result["textClipsAfterApply"] == 1
    assert "Holiday!" in result["appliedText"]
    enhance_request, chat_request = chat_stand_in.requests
    assert enhance_request.body["messages"][-1]["content"] == "fox in snow"
    assert "Add a holiday title please" in json.dumps(chat_request.body["messages"])

"""Silent token refresh in Chromium, against a real auth service whose access tokens live 4 s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from gateway.config import GatewayConfig
from gateway.envoy import EnvoyProcess
from services.auth.server import build
from services.kit.server import stop
from tests.fixtures.auth import test_auth_config
from tests.gateway.browser import artifacts_dir, run_script_async, skip_without_browser

pytestmark = [pytest.mark.browser]

TTL_SECONDS = 4


@pytest_asyncio.fixture(scope="module")
async def short_lived_gateway(
    tmp_path_factory: pytest.TempPathFactory, editor_dist: Path, envoy_factory
) -> AsyncIterator[EnvoyProcess]:
    skip_without_browser()
    config = test_auth_config(str(tmp_path_factory.mktemp("auth-ttl")), access_token_ttl_seconds=TTL_SECONDS)
    server, port = await build(config)
    await server.start()
    address = f"127.0.0.1:{port}"
    gateway = GatewayConfig(
        port=0,
        admin_port=0,
        static_dir=str(editor_dist),
        health_check_interval_seconds=0.5,
        # Only auth is needed; the other clusters point at it and are never called.
        auth_address=address,
        storage_address=address,
        inference_address=address,
        render_address=address,
    )
    envoy = await envoy_factory(gateway)
    await envoy.wait_healthy(["auth"])
    yield envoy
    await envoy.stop()
    await stop(server)


async def test_tokens_rotate_silently_and_the_session_survives_a_reload(
    short_lived_gateway: EnvoyProcess,
) -> None:
    # On failure the report holds the page's address and text, and every gRPC-Web call with its status.
    result = await run_script_async(
        "refresh",
        short_lived_gateway.url,
        artifacts_dir("editor-refresh"),
        time_limit=120,
        wait=str(TTL_SECONDS + 2),
        tabs_wait=str(TTL_SECONDS * 3 + 2),
    )
    assert result["redirectedTo"] == "/login"  # protected route without a session
    assert result["rotated"] is True  # access and refresh token both replaced in the background
    assert result["expiresLater"] is True
    assert result["stillSignedIn"] is True
    assert result["nameAfterReload"] == "Refresher"  # GetMe succeeded after the reload
    # Two tabs refreshing one session for three token lifetimes: both still signed in, holding the
    # same tokens, and no call was ever refused (a tab presenting a token the other spent is reuse).
    assert result["tabsRotated"] is True
    assert result["tabsSignedIn"] == ["/assets", "/assets"]
    assert result["tabsShareTokens"] is True
    assert not [call for call in result["calls"] if "grpc=16" in call], result["calls"]
    assert result["consoleErrors"] == []

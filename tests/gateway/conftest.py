"""Fixtures of the browser tests: Envoy serving the built editor in front of the mesh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_asyncio

from gateway.config import GatewayConfig
from gateway.envoy import EnvoyProcess
from tests.gateway.browser import MESH_SERVICES, skip_without_browser


@pytest_asyncio.fixture(scope="module")
async def editor_gateway(mesh: Any, editor_dist: Path, envoy_factory: Any) -> EnvoyProcess:
    """Envoy serving the freshly built editor in front of the mesh's services."""
    skip_without_browser()
    running = [name for name in (*MESH_SERVICES, "account") if name in mesh.services]
    endpoints = mesh.endpoints
    config = GatewayConfig(
        port=0,
        admin_port=0,
        static_dir=str(editor_dist),
        health_check_interval_seconds=0.5,
        auth_address=endpoints["auth"],
        storage_address=endpoints["storage"],
        inference_address=endpoints.get("inference", endpoints["auth"]),
        render_address=endpoints.get("render", endpoints["auth"]),
        account_address=endpoints.get("account", endpoints["auth"]),
    )
    envoy = await envoy_factory(config)
    await envoy.wait_healthy(running, within=60)
    return envoy

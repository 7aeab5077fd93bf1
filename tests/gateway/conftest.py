"""Fixtures of the browser tests: Envoy serving the built editor in front of the mesh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_asyncio

from gateway.envoy import EnvoyProcess
from tests.gateway.browser import MESH_SERVICES, editor_gateway_config, skip_without_browser


@pytest_asyncio.fixture(scope="module")
async def editor_gateway(mesh: Any, editor_dist: Path, envoy_factory: Any) -> EnvoyProcess:
    """Envoy serving the freshly built editor in front of the mesh's services."""
    skip_without_browser()
    running = [name for name in (*MESH_SERVICES, "account") if name in mesh.services]
    config = editor_gateway_config(editor_dist, mesh.endpoints)
    envoy = await envoy_factory(config)
    await envoy.wait_healthy(running, within=60)
    return envoy

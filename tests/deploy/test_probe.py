"""The containers' healthcheck command, `python -m services.kit.probe 127.0.0.1:PORT`, run as compose
runs it (a separate process) against real auth servers: SERVING, draining, gone."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

from tests.deploy.helpers import REPO
from tests.fixtures.auth import AuthService, test_auth_config


async def _probe(address: str, *extra: str) -> tuple[int, str]:
    # Asynchronous: the server under test runs on this event loop and must keep answering.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.kit.probe", address, *extra,
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return int(process.returncode or 0), out.decode().strip()


async def test_probe_reports_a_serving_service(auth_service: AuthService) -> None:
    assert await _probe(auth_service.address) == (0, "SERVING")
    assert await _probe(auth_service.address, "--service", "viarte.auth.v1.AuthService") == (0, "SERVING")
    code, out = await _probe(auth_service.address, "--service", "viarte.nope.v1.Missing")
    assert (code, out) == (1, "NOT_SERVING")


async def test_probe_fails_while_draining_and_when_nothing_listens(tmp_path: Path) -> None:
    from services.auth.server import build
    from services.kit.server import stop

    server, port = await build(test_auth_config(str(tmp_path)))
    await server.start()
    address = f"127.0.0.1:{port}"
    assert await _probe(address) == (0, "SERVING")
    stopping = asyncio.create_task(stop(server, grace=3.0))
    await asyncio.sleep(0.2)
    # Graceful stop: NOT_SERVING first, so compose/Envoy stop routing before connections close.
    assert await _probe(address, "--timeout", "1") == (1, "NOT_SERVING")
    await stopping
    assert await _probe(address, "--timeout", "1") == (1, "NOT_SERVING")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        unused = s.getsockname()[1]
    assert await _probe(f"127.0.0.1:{unused}", "--timeout", "1") == (1, "NOT_SERVING")

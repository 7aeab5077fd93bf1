"""``python -m gateway`` runs Envoy in front of the mesh; ``python -m gateway config`` prints its YAML;
``python -m gateway build`` builds the editor it serves (when a source changed).

Configuration comes from the environment like every service (``VIARTE_GATEWAY_*``, falling back to
the mesh-wide ``VIARTE_*``: ``VIARTE_AUTH_ADDRESS`` ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from gateway.config import GatewayConfig
from gateway.editor_build import ensure_editor_built
from gateway.envoy import start_envoy
from gateway.envoy_config import render_yaml
from services.kit.config import load_config


async def _serve(config: GatewayConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with await start_envoy(config) as envoy:
        print(f"viarte gateway on {envoy.url} (admin {envoy.admin_url})", flush=True)
        if envoy.s3_front_url:
            print(f"S3 front on {envoy.s3_front_url} (storage's s3_public_endpoint)", flush=True)
        waiter = asyncio.ensure_future(envoy.process.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def main(argv: list[str]) -> None:
    config = load_config(GatewayConfig)
    if argv[1:2] == ["build"]:
        print(ensure_editor_built())
        return
    if argv[1:2] == ["config"]:
        sys.stdout.write(render_yaml(config))
        return
    asyncio.run(_serve(config))


if __name__ == "__main__":
    main(sys.argv)

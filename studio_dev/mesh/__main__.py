"""``python -m studio_dev.mesh supervise|up|down|status`` (config from ``VIARTE_MESH_*``).

``supervise`` is what ``viarte up`` launches in the background; ``up`` starts it detached and
returns when the mesh is ready; ``down`` stops it; ``status`` prints the state file's view.
"""

from __future__ import annotations

import asyncio
import sys

from services.kit.config import load_config
from studio_dev.mesh.config import MeshConfig
from studio_dev.mesh.control import start, status, stop
from studio_dev.mesh.runner import MeshError, Supervisor


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "supervise"
    config = load_config(MeshConfig)
    try:
        if command == "supervise":
            asyncio.run(Supervisor(config).run_forever())
        elif command == "up":
            ready = start(config)
            for name, address in ready.endpoints.items():
                print(f"{name:10} {address}")
            if ready.gateway_url:
                print(f"{'gateway':10} {ready.gateway_url}")
        elif command == "down":
            stop(config.root)
        elif command == "status":
            state, rows = status(config.root)
            print(state.state if state else "not running")
            for row in rows:
                print(f"{row.name:10} {row.status:8} {'healthy' if row.healthy else '-':8} {row.address}")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except MeshError as exc:
        print(f"mesh: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The editor's Chromium scripts (gateway/editor/e2e/*.mjs) as the browser tests run them.

Each script drives Debian's Chromium (playwright-core) against a real Envoy and records what it saw
in `<artifacts>/result.json` (plus screenshots); the assertions live in the tests. `run_script`
is the one way to run a script: its command line, the failure report when it writes no result or
exits non-zero, and the result.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.config import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]
EDITOR = ROOT / "gateway" / "editor"
CHROMIUM = Path("/usr/bin/chromium")
MESH_SERVICES = ("auth", "storage", "inference", "render")  # what the whole editor flow needs


def skip_without_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    if shutil.which("node") is None:
        pytest.skip("node is not installed")


def artifacts_dir(name: str) -> Path:
    """test-artifacts/<name>: kept after the run (CI uploads it) for a failed step's screenshots."""
    return ROOT / "test-artifacts" / name


def run_script(
    script: str, base: str, artifacts: Path, *, time_limit: float, **options: str
) -> dict[str, Any]:
    """`node e2e/<script>.mjs --base B --artifacts A --chromium C --<option> <value>...` from the
    editor's folder; returns its result.json. Fails the test with the script's error, console errors
    and stderr when it writes no result or exits non-zero."""
    command = [
        "node",
        f"e2e/{script}.mjs",
        "--base",
        base,
        "--artifacts",
        str(artifacts),
        "--chromium",
        str(CHROMIUM),
    ]
    # --name=value: a value may be empty or start with "-"; tabs_wait= becomes --tabs-wait.
    command += [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]
    result_file = artifacts / "result.json"
    result_file.unlink(missing_ok=True)  # a script that dies early must not report an earlier run
    done = subprocess.run(
        command, cwd=EDITOR, capture_output=True, text=True, timeout=time_limit, check=False
    )
    if not result_file.exists():
        pytest.fail(f"{script}.mjs did not report:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    if done.returncode != 0:
        pytest.fail(
            f"{script}.mjs failed: {result.get('error')}\nconsole: {result.get('consoleErrors')}\n"
            f"result: {json.dumps(result)[:4000]}\nstderr: {done.stderr[-2000:]}"
        )
    return result


async def run_script_async(
    script: str, base: str, artifacts: Path, *, time_limit: float, **options: str
) -> dict[str, Any]:
    """`run_script` off the event loop (the mesh the script talks to may run on this loop)."""
    return await asyncio.to_thread(run_script, script, base, artifacts, time_limit=time_limit, **options)


def editor_gateway_config(editor_dist: Path, endpoints: dict[str, str], **addresses: str) -> GatewayConfig:
    """Envoy's config for the built editor in front of the mesh's `endpoints`; a service the mesh
    does not run points at auth (never called); `addresses` adds or replaces clusters."""
    fallback = endpoints["auth"]
    return GatewayConfig(
        port=0,
        admin_port=0,
        static_dir=str(editor_dist),
        health_check_interval_seconds=0.5,
        auth_address=endpoints["auth"],
        storage_address=endpoints["storage"],
        inference_address=endpoints.get("inference", fallback),
        render_address=endpoints.get("render", fallback),
        account_address=endpoints.get("account", fallback),
        **addresses,
    )

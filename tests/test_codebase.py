"""Codebase rules that keep the mesh coherent: lint, types, and one reader of the environment."""

from __future__ import annotations

import ast
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON_TREES = ("services", "viarte", "gateway", "bench", "tests", "scripts")
# The kit's config loader is the only reader. Handing the whole environment down to a child process
# (PATH, HOME, locale: `dict(os.environ)`, `**os.environ`) is not reading configuration.
ENVIRONMENT_READERS = {"services/kit/config.py"}
_ENV_READ = re.compile(r"os\.environ\s*\[|os\.environ\.get\b|os\.environ\.setdefault|os\.getenv|\bgetenv\(|environ\.get\(")


def _sources() -> list[Path]:
    files: list[Path] = []
    for tree in PYTHON_TREES:
        files += [
            p for p in (ROOT / tree).rglob("*.py")
            if "_pb2" not in p.name and "node_modules" not in p.parts and ".venv" not in p.parts
        ]
    return files


def test_only_the_config_loader_reads_the_environment():
    offenders = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        if rel in ENVIRONMENT_READERS or rel == "tests/test_codebase.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _ENV_READ.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "read configuration through services.kit.config instead:\n" + "\n".join(offenders)


def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *PYTHON_TREES], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_mypy_is_clean_on_services_sdk_and_gateway():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "services", "viarte", "gateway"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


# -- architecture rules -------------------------------------------------------------------------
SERVICES = ("auth", "storage", "inference", "render")
MAX_LINES = 600


def _imported_modules(source: str, package: tuple[str, ...]) -> list[tuple[int, str]]:
    """Every module that code in ``package`` imports, absolute (relative imports resolved), with the
    line: import statements and importlib.import_module / __import__ calls with a literal name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            # `from services import render` imports the package named by the alias.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else None


def test_no_service_package_imports_another_service_package():
    """A service reaches another only through its contract (protos/ stubs): its own package, the kit
    and the generated stubs are all it may import. The kit imports no service."""
    offenders = []
    for owner in (*SERVICES, "kit"):
        for path in sorted((ROOT / "services" / owner).rglob("*.py")):
            package = path.relative_to(ROOT).parts[:-1]
            for line, module in _imported_modules(path.read_text(), package):
                other = _service_of(module)
                if other is not None and other not in (owner, "kit"):
                    offenders.append(f"{path.relative_to(ROOT).as_posix()}:{line}: imports {module}")
    assert not offenders, "talk to another service through its gRPC contract instead:\n" + "\n".join(offenders)


def test_the_import_scan_sees_every_form_of_import():
    # The rule above is only as good as this scan: every spelling of an import must be seen.
    source = (
        "import services.storage.keys\nfrom services.inference import config\nfrom services import auth\n"
        "from ..storage import media\nfrom . import handlers\nimport importlib\n"
        "importlib.import_module('services.auth.store')\n"
    )
    modules = [module for _, module in _imported_modules(source, ("services", "render"))]
    assert [_service_of(m) for m in modules] == ["storage", "inference", "auth", "storage", "render", None, "auth"]


def test_no_hand_written_python_file_is_over_600_lines():
    offenders = []
    for path in _sources():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            offenders.append(f"{path.relative_to(ROOT).as_posix()}: {lines} lines")
    assert not offenders, f"split these by purpose (at most {MAX_LINES} lines each):\n" + "\n".join(offenders)


# Built the way `python -m services.<svc>` builds it (its config dataclass from the environment, then
# the package's own `server.build`), in a fresh interpreter; prints the heavy modules it imported.
_BUILD_SERVER = """
import asyncio, importlib, json, sys
from services.kit.config import ServiceConfig, load_config
from services.kit.server import stop

name = sys.argv[1]
config_module = importlib.import_module(f"services.{name}.config")
cls = next(v for v in vars(config_module).values()
           if isinstance(v, type) and issubclass(v, ServiceConfig) and getattr(v, "service_name", "") == name)
environ = dict(arg.split("=", 1) for arg in sys.argv[2:])

async def main():
    build = importlib.import_module(f"services.{name}.server").build
    server, port = await build(load_config(cls, environ=environ))
    loaded = sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)
    await stop(server, 0)
    print(json.dumps({"port": port, "loaded": loaded}))

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_server_process_never_imports_torch(name: str, tmp_path: Path) -> None:
    """Model work lives in worker processes; a server that imported torch would carry it (seconds
    of startup, a GiB of memory) in every replica and die with a worker's crash."""
    nowhere = f"127.0.0.1:{_free_port()}"  # nothing listens: peers (auth, storage, S3) are not needed to build
    environ = {
        "VIARTE_PORT": "0", "VIARTE_METRICS_PORT": "-1", "VIARTE_DATA_DIR": str(tmp_path), "VIARTE_LOG_LEVEL": "WARNING",
        "VIARTE_AUTH_ADDRESS": nowhere, "VIARTE_STORAGE_ADDRESS": nowhere,
        "VIARTE_STORAGE_S3_ENDPOINT": f"http://{nowhere}", "VIARTE_STORAGE_S3_MAX_ATTEMPTS": "1",
        "VIARTE_STORAGE_S3_CONNECT_TIMEOUT_SECONDS": "1", "VIARTE_INFERENCE_DEVICES": "cpu",
    }
    result = subprocess.run(
        [sys.executable, "-c", _BUILD_SERVER, name, *(f"{k}={v}" for k, v in environ.items())],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["port"] > 0  # the server really was built
    assert report["loaded"] == [], f"the {name} server process imported {report['loaded']}"

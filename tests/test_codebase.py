"""Codebase rules that keep the mesh coherent: lint, types, and one reader of the environment."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from services.kit.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON_TREES = ("services", "viarte", "gateway", "studio_dev", "bench", "tests", "scripts")
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


# Typer/Click options can read a variable too (`envvar=`): only the CLI does, for its own client
# settings, because the SDK cannot import the services' config dataclasses.
CLI_ENVIRONMENT_READERS = {"viarte/cli/common.py"}
_CLI_ENV_READ = re.compile(r"""\benvvar\s*=\s*(?:\[\s*)?["'](\w+)["']""")


def test_cli_environment_options_never_shadow_a_dev_mesh_setting():
    """A dev-mesh setting (a MeshConfig field) has one name and one reader, MeshConfig: a CLI option
    reading it under another name (as `VIARTE_STATE_DIR` once did for VIARTE_MESH_STATE_DIR) would
    make the CLI and the runner it starts disagree."""
    import dataclasses

    from services.kit.config import ServiceConfig, env_names
    from studio_dev.mesh.config import MeshConfig

    inherited = {f.name for f in dataclasses.fields(ServiceConfig)}
    mesh_names = {n for f in dataclasses.fields(MeshConfig) if f.name not in inherited
                  for n in env_names(MeshConfig, f.name)}
    offenders = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("tests/"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in _CLI_ENV_READ.findall(line):
                if rel not in CLI_ENVIRONMENT_READERS or name in mesh_names:
                    offenders.append(f"{rel}:{number}: envvar {name}")
    assert not offenders, "dev-mesh settings are read by MeshConfig only:\n" + "\n".join(offenders)


def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *PYTHON_TREES], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_mypy_is_clean_on_services_sdk_gateway_and_dev_tooling():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "services", "viarte", "gateway", "studio_dev"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# The SDK on the ground floor: `viarte` stands on its declared dependencies alone.
# ---------------------------------------------------------------------------------------------
ABOVE_THE_SDK = ("services", "gateway", "studio_dev")


def _sdk_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Absolute imports, and modules named to importlib.import_module / find_spec / __import__."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "find_spec", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def test_the_sdk_imports_nothing_above_it():
    offenders = []
    for path in sorted((ROOT / "viarte").rglob("*.py")):
        for line, module in _sdk_imports(ast.parse(path.read_text(), str(path))):
            if module.split(".")[0] in ABOVE_THE_SDK:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not offenders, "viarte/ must not import services/, gateway/ or studio_dev/:\n" + "\n".join(offenders)


def _closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions of these requirements and, recursively, of what they require."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        dist = metadata.distribution(req.name)
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key not in seen:
            seen[key] = dist
            todo += [Requirement(r) for r in dist.requires or []]
    return list(seen.values())


def _link_distributions(dists: list[metadata.Distribution], site: Path) -> None:
    """Symlinks the distributions' top-level entries into site (namespace packages such as google/
    one level down, so that only these distributions' parts of them appear)."""
    for dist in dists:
        root = Path(str(dist.locate_file("")))
        for file in dist.files or []:
            parts = Path(str(file)).parts
            if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".pth"):
                continue
            top = root / parts[0]
            if top.is_dir() and not (top / "__init__.py").exists() and not parts[0].endswith(".dist-info") and len(parts) > 2:
                (site / parts[0]).mkdir(exist_ok=True)
                link, target = site / parts[0] / parts[1], top / parts[1]
            else:
                link, target = site / parts[0], top
            if not link.exists() and target.exists():
                link.symlink_to(target)


def _run(python: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # -I: no PYTHONPATH, no user site, not the working directory: the venv's site-packages only.
    env = {"PATH": os.defpath, "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run([str(python), "-I", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


_PROBE = """
import importlib.util, json, sys
{imports}
above = ("services", "gateway", "studio_dev", "typer", "rich", "click", "torch")
print(json.dumps({{"importable": [m for m in above if importlib.util.find_spec(m) is not None],
                  "loaded": sorted({{m.split(".")[0] for m in sys.modules}} & set(above))}}))
"""


def test_the_sdk_imports_in_a_venv_with_only_its_own_dependencies(tmp_path: Path):
    """A venv holding only the SDK's declared dependencies (and theirs) plus the repository's viarte/:
    the SDK imports, nothing above it is there; the CLI then asks for its extra, and with the extra
    but without the dev tooling it says where the dev commands come from."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    python = tmp_path / "venv" / "bin" / "python"
    (site,) = (tmp_path / "venv" / "lib").glob("python3*/site-packages")
    _link_distributions(_closure(project["dependencies"]), site)
    (site / "viarte").symlink_to(ROOT / "viarte")

    sdk = _run(python, _PROBE.format(imports=(
        "import viarte\nfrom viarte import AsyncClient, Client, Endpoints, generation_parameters\n"
        "from viarte.errors import InvalidArgument\nfrom viarte.timeline import load_timeline\n"
        "Client('127.0.0.1:1').close()"
    )), tmp_path)  # fmt: skip
    assert sdk.returncode == 0, sdk.stderr[-3000:]
    assert json.loads(sdk.stdout) == {"importable": [], "loaded": []}

    # The console script's target without the [cli] extra: an install hint, not a traceback.
    bare = _run(python, "from viarte.cli import main; main(['--help'])", tmp_path)
    assert bare.returncode == 1 and "Traceback" not in bare.stderr, bare.stderr[-3000:]
    assert "pip install 'viarte-studio[cli]'" in bare.stderr

    _link_distributions(_closure(project["optional-dependencies"]["cli"]), site)
    listed = _run(python, "from viarte.cli import main; main(['--help'])", tmp_path)
    assert listed.returncode == 0 and "generate" in listed.stdout, listed.stderr[-3000:]
    assert " up " not in listed.stdout and " demo " not in listed.stdout  # dev commands are not offered here
    for argv, command in ((["up", "--models", "tiny"], "up"), (["--json", "models", "pull", "--dry-run"], "models pull")):
        run = _run(python, f"from viarte.cli import main; main({argv!r})", tmp_path)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
        said = " ".join(run.stderr.split())  # as one line, however the console wrapped it
        assert f"`viarte {command}` is part of the Viarte Studio repository's dev tooling" in said
        assert "studio_dev" in said and "pip install -e '.[server,cli]'" in said
    probe = _run(python, _PROBE.format(imports="import viarte.cli.commands"), tmp_path)
    importable = json.loads(probe.stdout)["importable"]
    assert {"typer", "rich"} <= set(importable) and not set(importable) & {*ABOVE_THE_SDK, "torch"}, probe.stderr


def test_the_dev_tooling_registers_its_commands_through_the_entry_point():
    """pyproject.toml declares studio_dev.cli:register in the `viarte.cli` group and the installed
    metadata carries it (after `pip install -e .`, which scripts/bootstrap.sh runs on each change)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["viarte.cli"]
    installed = {e.name: e.value for e in metadata.entry_points(group="viarte.cli")}
    assert installed == declared, "reinstall the project (scripts/bootstrap.sh) to register its entry points"
    from viarte.cli import app
    from viarte.cli.models import models_app

    commands = {info.name or info.callback.__name__: info.callback for info in app.registered_commands if info.callback}
    assert {"up", "down", "status", "demo"} <= set(commands)
    assert all(commands[c].__module__ == "studio_dev.cli" for c in ("up", "down", "status", "demo"))
    pull = next(i for i in models_app.registered_commands if i.name == "pull")
    assert pull.callback is not None and pull.callback.__module__ == "studio_dev.cli"


# -- architecture rules -------------------------------------------------------------------------
SERVICES = ("auth", "storage", "inference", "render", "account")
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


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_server_process_never_imports_torch(name: str, tmp_path: Path) -> None:
    """Model work lives in worker processes; a server that imported torch would carry it (seconds
    of startup, a GiB of memory) in every replica and die with a worker's crash."""
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens: peers (auth, storage, S3) are not needed to build
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

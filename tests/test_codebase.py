"""Codebase rules that keep the mesh coherent: lint, types, and one reader of the environment."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


# Typer/Click options can read a variable too (`envvar=`): only the CLI does, for its own client
# settings, because the SDK cannot import the services' config dataclasses.
CLI_ENVIRONMENT_READERS = {"viarte/cli.py"}
_CLI_ENV_READ = re.compile(r"""\benvvar\s*=\s*(?:\[\s*)?["'](\w+)["']""")


def test_cli_environment_options_never_shadow_a_dev_mesh_setting():
    """A dev-mesh setting (a MeshConfig field) has one name and one reader, MeshConfig: a CLI option
    reading it under another name (as `VIARTE_STATE_DIR` once did for VIARTE_MESH_STATE_DIR) would
    make the CLI and the runner it starts disagree."""
    import dataclasses

    from services.kit.config import ServiceConfig, env_names
    from services.mesh.config import MeshConfig

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


def test_mypy_is_clean_on_services_sdk_and_gateway():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "services", "viarte", "gateway"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]

"""Readers for the deployment files: Dockerfiles, .dockerignore rules, the resolved compose model."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from services.kit.config import ServiceConfig

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKER = DEPLOY / "docker"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_TLS = DEPLOY / "compose.tls.yaml"
# compose service → the images' Python service package (their config class is services/<pkg>/config.py).
SERVICE_PACKAGES = {"auth": "auth", "storage": "storage", "inference": "inference", "render": "render",
                    "account": "account"}
GRPC_SERVICES = tuple(SERVICE_PACKAGES)


def load_script(path: Path) -> ModuleType:
    """Import a deploy/ script (they are scripts, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"deploy_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module's annotations through it
    spec.loader.exec_module(module)
    return module


def config_class(package: str) -> type[ServiceConfig]:
    """The ServiceConfig subclass of services/<package>/config.py (fails clearly when it is missing)."""
    module = importlib.import_module(f"services.{package}.config")
    found = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, ServiceConfig)
        and obj is not ServiceConfig
        and obj.__module__ == module.__name__
    ]
    assert len(found) == 1, f"services/{package}/config.py should define one ServiceConfig, found {found}"
    return found[0]


# ---------------------------------------------------------------------------------------------------
# Dockerfiles


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    path: Path
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.args.get(m[1] or m[2], m[0]), text)


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse_dockerfile(path: Path) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages:
            for item in rest.split():
                name, _, default = item.partition("=")
                args[name] = default
            continue
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base=base, name=name))
            continue
        assert stages, f"{path}: {keyword} before FROM"
        stages[-1].instructions.append((keyword, rest))
    return Dockerfile(path=path, args=args, stages=stages)


def copy_instructions(stage: Stage) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not --from another stage)."""
    copies: list[tuple[list[str], str]] = []
    for args in stage.all("COPY"):
        parts = args.split()
        if any(p.startswith("--from") for p in parts):
            continue
        parts = [p for p in parts if not p.startswith("--")]
        copies.append((parts[:-1], parts[-1]))
    return copies


# ---------------------------------------------------------------------------------------------------
# .dockerignore (moby patternmatcher semantics: last matching rule wins, a rule matching a parent
# directory matches everything below it, `**` spans directories, `!` re-includes)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[bool, re.Pattern[str]], ...]

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:].strip() if negate else line
            pattern = pattern.strip("/")
            rules.append((negate, _pattern_regex(pattern)))
        return cls(tuple(rules))

    def excluded(self, relpath: str) -> bool:
        parts = relpath.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for negate, regex in self.rules:
            if any(regex.match(c) for c in candidates):
                result = not negate
        return result


def context_files(ignore: DockerIgnore, root: Path = REPO) -> set[str]:
    """Every file of the git work tree (tracked or not ignored by git) the build context would send."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return {p for p in listed if (root / p).is_file() and not ignore.excluded(p)}


def materialize_copies(dockerfile: Dockerfile, ignore: DockerIgnore, target: Path) -> None:
    """Lay out, under target (the image's WORKDIR), what the final stage's COPY instructions copy."""
    available = context_files(ignore)
    for sources, destination in copy_instructions(dockerfile.final):
        for source in sources:
            source = source.rstrip("/")
            matched = sorted(p for p in available if p == source or p.startswith(source + "/"))
            assert matched, f"{dockerfile.path.name}: COPY {source} copies nothing from the build context"
            for rel in matched:
                if destination.endswith("/"):
                    inner = rel[len(source) :].lstrip("/") or Path(rel).name
                    dest = target / destination / inner
                else:
                    dest = target / destination
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, dest)


# ---------------------------------------------------------------------------------------------------
# compose


def compose_model(*files: Path, tmp: Path, env_file: Path | None = None) -> dict[str, Any]:
    """`docker-compose config` of the files: the model compose itself resolved (anchors, defaults)."""
    if env_file is None:  # not the host's deploy/.env: the defaults written in compose
        env_file = tmp / "empty.env"
        env_file.write_text("")
    args = ["docker-compose", "--env-file", str(env_file)]
    for f in files:
        args += ["-f", str(f)]
    result = subprocess.run(
        [*args, "config"],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp)},
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    model = yaml.safe_load(result.stdout)
    assert isinstance(model, dict)
    return model


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}

"""requirements.lock is the one source of Python versions: it pins every declared dependency (and
every transitive one) with hashes, matches the environment the tests run in, and bootstrap and
every image install from it, hash-checked."""

from __future__ import annotations

import importlib.metadata as metadata
import re
import shlex
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.deploy.helpers import DEPLOY, DOCKER, REPO, load_script, parse_dockerfile

lock = load_script(DEPLOY / "lock.py")
LOCK_TEXT = (REPO / "requirements.lock").read_text()
ENTRIES = lock.parse(LOCK_TEXT)
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
IMAGES = ("auth", "storage", "inference", "render", "envoy")
# The only installs that do not come from the lock: the CUDA build of the locked torch release from
# PyTorch's index, and onnxruntime-gpu at the locked onnxruntime release.
_CUDA_TORCH = '--index-url "${TORCH_INDEX}" "torch==${TORCH%%+*}"'
_ORT_GPU = '--no-deps "onnxruntime-gpu==$(python deploy/lock.py version onnxruntime)"'


def _declared() -> list[Requirement]:
    groups = [PROJECT["dependencies"], *PROJECT["optional-dependencies"].values()]
    return [Requirement(r) for group in groups for r in group]


def test_lock_pins_every_declared_dependency_with_hashes() -> None:
    assert len(ENTRIES) > 50 and "# via" in LOCK_TEXT
    for requirement in _declared():
        entry = ENTRIES.get(lock.canonical(requirement.name))
        assert entry is not None, f"{requirement.name} is not in requirements.lock: run {lock.REFRESH_COMMAND}"
        assert requirement.specifier.contains(entry.version, prereleases=True), f"{entry.version} violates {requirement}"
    for entry in ENTRIES.values():
        assert entry.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in entry.hashes), entry.name
    # Every pin line was understood (nothing unpinned or unparsed slipped through).
    pins = [line for line in LOCK_TEXT.splitlines() if line and not line[0].isspace() and not line.startswith("#")]
    assert len(pins) == len(ENTRIES), set(pins) - {f"{e.name}=={e.version} \\" for e in ENTRIES.values()}
    # The tested torch is the CPU build; the GPU images take the CUDA build of the same release.
    assert ENTRIES["torch"].version.endswith("+cpu")
    # The lock is portable: none of this machine's index or find-links options.
    assert not re.search(r"^--(extra-)?index-url|^--find-links|^-[cr] ", LOCK_TEXT, re.M)
    assert lock.REFRESH_COMMAND in LOCK_TEXT  # the header names the one command that refreshes it


def test_lock_matches_the_tested_environment() -> None:
    problems = lock.check(LOCK_TEXT)
    assert not problems, f"the environment differs from requirements.lock (run scripts/bootstrap.sh): {problems}"


@pytest.mark.parametrize("extras", [["server"], ["server", "ml"], []], ids=lambda e: "+".join(e) or "base")
def test_an_image_share_of_the_lock_is_closed_under_dependencies(extras: list[str]) -> None:
    """What `select` picks by following `# via` holds every unconditional dependency of what it picks,
    read from the installed packages' own metadata."""
    chosen = lock.selection_names(ENTRIES, lock.declared(extras))
    assert {lock.canonical(r.name) for r in _declared() if r.name in str(PROJECT["dependencies"])} <= chosen
    if "ml" not in extras:
        assert "torch" not in chosen and "diffusers" not in chosen
    missing = []
    for name in chosen:
        for raw in metadata.requires(name) or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                if lock.canonical(requirement.name) not in chosen:
                    missing.append(f"{name} → {requirement}")
    assert not missing, missing
    text = lock.select(LOCK_TEXT, extras, without=["torch"])
    assert "torch==" not in text and text.count("--hash=sha256:") >= len(chosen) - 1


def test_select_refuses_unknown_extras_and_packages() -> None:
    with pytest.raises(SystemExit, match="no extra"):
        lock.select(LOCK_TEXT, ["nope"])
    with pytest.raises(SystemExit, match=r"not in requirements\.lock"):
        lock.select(LOCK_TEXT, ["server"], without=["not-a-package"])


def _commands(script: str) -> list[str]:
    """Shell commands of a script or RUN instruction, split on &&, ; and newlines, continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [c.strip() for c in re.split(r"&&|;|\n", joined) if c.strip() and not c.strip().startswith("#")]


def _installs(script: str) -> list[str]:
    """Every pip install a script runs (directly or through its PIP=(...) array)."""
    return [c for c in _commands(script)
            if not c.startswith("PIP=(") and (re.search(r"\bpip install\b", c) or c.startswith('"${PIP[@]}"'))]


def test_bootstrap_installs_the_lock_hash_checked_and_stamps_on_it() -> None:
    text = (REPO / "scripts" / "bootstrap.sh").read_text()
    pip_line = next(line for line in text.splitlines() if line.startswith("PIP=("))
    assert "--require-hashes" in pip_line and "--no-deps" in pip_line
    installs = _installs(text)
    assert installs
    for command in installs:
        words = shlex.split(command)
        if "-e" in words:  # the project itself: no dependencies, built with the locked setuptools
            assert {"--no-deps", "--no-build-isolation"} <= set(words), command
        else:  # everything else through PIP=(... --require-hashes --no-deps) from the lock or a share of it
            assert words[0] == "${PIP[@]}" and "-r" in words, command
    assert any(shlex.split(c)[-1] == "requirements.lock" for c in installs)
    assert re.search(r"deps_hash=.*requirements\.lock", text)  # idempotent: the stamp is the lock's hash
    assert "deploy/lock.py check" in text and "pip check" in text


@pytest.mark.parametrize("image", IMAGES)
def test_every_image_installs_from_the_lock(image: str) -> None:
    dockerfile = parse_dockerfile(DOCKER / f"{image}.Dockerfile")
    runs = [r for stage in dockerfile.stages for r in stage.all("RUN")]
    installs = [c for r in runs for c in _commands(r) if re.search(r"\bpip install\b", c)]
    assert installs, f"{image}.Dockerfile installs no Python packages?"
    from_lock = 0
    for command in installs:
        if command.endswith("-r /tmp/requirements.txt"):
            assert "--require-hashes" in command and "--no-deps" in command, command
            from_lock += 1
        else:
            assert command.endswith((_CUDA_TORCH, _ORT_GPU)), f"{image}: an install outside the lock: {command}"
    assert from_lock == 1
    selects = [c for r in runs for c in _commands(r) if "deploy/lock.py select" in c]
    assert len(selects) == 1 and selects[0].endswith(">/tmp/requirements.txt")
    copied = " ".join(dockerfile.stages[0 if image != "envoy" else 1].all("COPY") + [
        a for s in dockerfile.stages for a in s.all("COPY")])
    assert "requirements.lock" in copied and "deploy/lock.py" in copied


def test_constraints_file_and_pin_script_are_gone() -> None:
    """One source of truth: nothing refers to the old constraints file or its generator."""
    assert not (DEPLOY / "constraints.txt").exists() and not (DEPLOY / "pin.py").exists()
    for path in [*DOCKER.iterdir(), REPO / ".dockerignore", REPO / "scripts" / "bootstrap.sh",
                 REPO / "README.md", DEPLOY / "README.md"]:
        text = path.read_text()
        assert "constraints.txt" not in text and "pin.py" not in text, path
    for readme in (REPO / "README.md", DEPLOY / "README.md"):
        assert lock.REFRESH_COMMAND in readme.read_text(), f"{readme} does not document the refresh command"

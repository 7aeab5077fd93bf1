"""The contracts: buf lint (STANDARD) is clean and the committed Python stubs are current."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "scripts" / "tools" / "node_modules" / ".bin" / "buf"


def test_buf_lint_is_clean():
    assert BUF.exists(), "buf is missing: run scripts/bootstrap.sh (npm install in scripts/tools)"
    result = subprocess.run([str(BUF), "lint"], cwd=ROOT / "protos", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_stubs_are_not_stale(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gen_protos import generate
    finally:
        sys.path.pop(0)
    fresh = generate(tmp_path)
    assert fresh, "no proto files found"
    stale = [
        str(p.relative_to(tmp_path))
        for p in fresh
        if not (ROOT / p.relative_to(tmp_path)).exists() or not filecmp.cmp(p, ROOT / p.relative_to(tmp_path), shallow=False)
    ]
    assert not stale, f"stale generated stubs (run scripts/gen_protos.py): {stale}"
    committed = {p.relative_to(ROOT) for p in (ROOT / "viarte").glob("*/v1/*_pb2*.py*")}
    orphans = committed - {p.relative_to(tmp_path) for p in fresh}
    assert not orphans, f"stubs without a proto: {sorted(map(str, orphans))}"


def test_every_rpc_documents_its_errors():
    missing = []
    for proto in sorted((ROOT / "protos").glob("viarte/**/*.proto")):
        lines = proto.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("rpc "):
                comment = []
                j = i - 1
                while j >= 0 and lines[j].strip().startswith("//"):
                    comment.append(lines[j])
                    j -= 1
                if not any("Errors" in c for c in comment):
                    missing.append(f"{proto.name}: {line.strip()}")
    assert not missing, "RPCs without an 'Errors:' comment:\n" + "\n".join(missing)

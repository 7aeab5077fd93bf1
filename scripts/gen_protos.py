"""Generate the Python gRPC stubs from protos/ into the `viarte` package.

Usage: python scripts/gen_protos.py [OUT_DIR]   (default: the repository root)

The stubs land next to the SDK (`viarte/<svc>/v1/*_pb2*.py`) so that their import paths equal the
proto packages. tests/test_protos.py regenerates into a temporary folder and fails when the
committed stubs are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTOS.glob("viarte/**/*.proto"))


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTOS)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated: list[Path] = []
    for proto in files:
        pkg_dir = out / Path(proto).parent
        # viarte/<svc>/ and viarte/<svc>/v1/ must be regular packages; viarte/ itself is the SDK's.
        for folder in (pkg_dir, pkg_dir.parent):
            (folder / "__init__.py").touch()
        stem = Path(proto).stem
        generated += [pkg_dir / f"{stem}_pb2.py", pkg_dir / f"{stem}_pb2.pyi", pkg_dir / f"{stem}_pb2_grpc.py"]
    return generated


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    for path in generate(target):
        print(path.relative_to(target))

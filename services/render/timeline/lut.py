"""3D LUTs in the ``.cube`` format (Adobe/Resolve): parsed and checked here, re-written by us.

ffmpeg's lut3d never reads the user's bytes: a LUT asset is parsed (size, domain, exactly
size³ finite triples, nothing else), and the compiler writes the canonical text of the parsed
table into the job's scratch folder, a local file ffmpeg reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MAX_LUT_BYTES", "MAX_LUT_SIZE", "CubeLut", "LutError", "parse_cube"]

MAX_LUT_SIZE = 65
# 65³ lines of three numbers with generous formatting.
MAX_LUT_BYTES = 16 * 1024 * 1024


class LutError(ValueError):
    pass


@dataclass(frozen=True)
class CubeLut:
    size: int
    domain_min: tuple[float, float, float]
    domain_max: tuple[float, float, float]
    # size³ (r, g, b) rows, red fastest (the .cube order).
    table: tuple[tuple[float, float, float], ...]

    def text(self) -> str:
        """The canonical .cube that ffmpeg reads."""
        head = [
            f"LUT_3D_SIZE {self.size}",
            "DOMAIN_MIN " + " ".join(f"{v:.6f}" for v in self.domain_min),
            "DOMAIN_MAX " + " ".join(f"{v:.6f}" for v in self.domain_max),
        ]
        return "\n".join(head + [f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in self.table]) + "\n"


def _triple(parts: list[str], what: str) -> tuple[float, float, float]:
    if len(parts) != 3:
        raise LutError(f"{what}: expected three numbers")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise LutError(f"{what}: not a number") from None
    if not all(math.isfinite(v) and abs(v) <= 1e6 for v in values):
        raise LutError(f"{what}: numbers must be finite")
    return values  # type: ignore[return-value]


def parse_cube(data: bytes) -> CubeLut:
    """A validated 3D LUT, or LutError saying what is wrong."""
    if len(data) > MAX_LUT_BYTES:
        raise LutError(f"larger than {MAX_LUT_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LutError("not UTF-8 text") from None
    size = 0
    lo, hi = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    rows: list[tuple[float, float, float]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        key = parts[0].upper()
        if key == "TITLE":
            continue
        if key == "LUT_1D_SIZE":
            raise LutError("1D LUTs are not supported (LUT_3D_SIZE expected)")
        if key == "LUT_3D_SIZE":
            if size or rows or len(parts) != 2 or not parts[1].isdigit():
                raise LutError(f"line {number}: one LUT_3D_SIZE before the table")
            size = int(parts[1])
            if not 2 <= size <= MAX_LUT_SIZE:
                raise LutError(f"LUT_3D_SIZE must be in [2, {MAX_LUT_SIZE}]")
        elif key == "DOMAIN_MIN" and not rows:
            lo = _triple(parts[1:], f"line {number}")
        elif key == "DOMAIN_MAX" and not rows:
            hi = _triple(parts[1:], f"line {number}")
        elif key[0].isalpha():
            raise LutError(f"line {number}: unknown keyword {parts[0][:40]!r}")
        else:
            if not size:
                raise LutError("LUT_3D_SIZE must come before the table")
            rows.append(_triple(parts, f"line {number}"))
            if len(rows) > size**3:
                raise LutError(f"more than {size}³ rows")
    if not size:
        raise LutError("no LUT_3D_SIZE: not a .cube LUT")
    if len(rows) != size**3:
        raise LutError(f"{len(rows)} rows; LUT_3D_SIZE {size} needs {size**3}")
    if not all(a < b for a, b in zip(lo, hi, strict=True)):
        raise LutError("DOMAIN_MIN must be below DOMAIN_MAX")
    return CubeLut(size, lo, hi, tuple(rows))

"""3D LUTs in the ``.cube`` format (Adobe/Resolve): parsed and checked here, re-written by us.

One parser for the mesh: storage refuses an upload declared as a LUT that does not parse
(`looks_like_cube` on the first bytes, `parse_cube` on the stored object), and render parses the
asset again before use (it never trusts what another service stored). ffmpeg's lut3d never reads
the user's bytes: the compiler writes the canonical text of the parsed table into the job's
scratch folder, a local file ffmpeg reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CUBE_CONTENT_TYPE", "MAX_LUT_BYTES", "MAX_LUT_SIZE", "CubeLut", "LutError", "looks_like_cube", "parse_cube"]

# No registered type exists for .cube; an application/ type is downloaded, never shown inline.
CUBE_CONTENT_TYPE = "application/x-cube-lut"
MAX_LUT_SIZE = 65
# 65³ lines of three numbers with generous formatting.
MAX_LUT_BYTES = 16 * 1024 * 1024
_KEYWORDS = frozenset({"TITLE", "LUT_3D_SIZE", "LUT_1D_SIZE", "DOMAIN_MIN", "DOMAIN_MAX", "LUT_3D_INPUT_RANGE"})


class LutError(ValueError):
    """What is wrong with a LUT; `line` is the 1-based line it was found on (0: the whole file)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


def looks_like_cube(head: bytes) -> bool:
    """Whether the first bytes of a file can start a .cube: text (UTF-8, no control characters but
    tabs and line ends) whose lines are blank, comments, .cube keywords, or table rows after a
    keyword. Only a pre-check (the sniff): the whole file must still parse."""
    head = head.removeprefix(b"\xef\xbb\xbf")
    if not head.strip() or any((b < 0x20 and b not in b"\t\r\n") or b == 0x7F for b in head):
        return False
    text = head.decode("utf-8", errors="ignore")  # a character cut at the end of the head is dropped
    lines = text.splitlines()
    # The last line may be cut by the end of the head: its word only has to start a keyword.
    cut = lines.pop() if lines and not text.endswith(("\n", "\r")) else ""
    keyword_seen = False
    for raw, whole in [(line, True) for line in lines] + [(cut, False)]:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split()[0].upper()
        if word in _KEYWORDS or (not whole and any(k.startswith(word) for k in _KEYWORDS)):
            keyword_seen = True
        elif not (keyword_seen and word[0] in "0123456789+-."):
            return False
    return True


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


def _triple(parts: list[str], line: int) -> tuple[float, float, float]:
    if len(parts) != 3:
        raise LutError(f"line {line}: expected three numbers", line)
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise LutError(f"line {line}: not a number", line) from None
    if not all(math.isfinite(v) and abs(v) <= 1e6 for v in values):
        raise LutError(f"line {line}: numbers must be finite", line)
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
            raise LutError(f"line {number}: 1D LUTs are not supported (LUT_3D_SIZE expected)", number)
        if key == "LUT_3D_SIZE":
            if size or rows or len(parts) != 2 or not parts[1].isdigit():
                raise LutError(f"line {number}: one LUT_3D_SIZE before the table", number)
            size = int(parts[1])
            if not 2 <= size <= MAX_LUT_SIZE:
                raise LutError(f"line {number}: LUT_3D_SIZE must be in [2, {MAX_LUT_SIZE}]", number)
        elif key == "DOMAIN_MIN" and not rows:
            lo = _triple(parts[1:], number)
        elif key == "DOMAIN_MAX" and not rows:
            hi = _triple(parts[1:], number)
        elif key[0].isalpha():
            raise LutError(f"line {number}: unknown keyword {parts[0][:40]!r}", number)
        else:
            if not size:
                raise LutError(f"line {number}: LUT_3D_SIZE must come before the table", number)
            rows.append(_triple(parts, number))
            if len(rows) > size**3:
                raise LutError(f"line {number}: more than {size}³ rows", number)
    if not size:
        raise LutError("no LUT_3D_SIZE: not a .cube LUT")
    if len(rows) != size**3:
        raise LutError(f"{len(rows)} rows; LUT_3D_SIZE {size} needs {size**3}")
    if not all(a < b for a, b in zip(lo, hi, strict=True)):
        raise LutError("DOMAIN_MIN must be below DOMAIN_MAX")
    return CubeLut(size, lo, hi, tuple(rows))

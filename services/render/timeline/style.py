"""Colours and fonts of a timeline: parsing ``#rrggbb[aa]`` and finding installed font files."""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache

__all__ = ["font_file", "parse_color", "valid_color"]

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})([0-9a-fA-F]{2})?$")


def valid_color(text: str, *, empty_ok: bool, alpha: bool = False) -> bool:
    if not text:
        return empty_ok
    m = _HEX.match(text)
    return m is not None and (alpha or m.group(2) is None)


def parse_color(text: str) -> str:
    """``#rrggbb[aa]`` → ffmpeg's ``0xRRGGBB[@alpha]``."""
    m = _HEX.match(text)
    if m is None:
        raise ValueError(f"bad colour {text!r}")
    rgb = m.group(1).upper()
    return f"0x{rgb}" if m.group(2) is None else f"0x{rgb}@{int(m.group(2), 16) / 255:.4f}"


@lru_cache(maxsize=64)
def font_file(family: str) -> str | None:
    """The font file fontconfig picks for ``family``, or None when no such family is installed."""
    try:
        done = subprocess.run(["fc-match", "-f", "%{family}\n%{file}", family], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) < 2:
        return None
    # fc-match always answers with something; only accept the family that was asked for.
    families = {f.strip().lower() for f in lines[0].split(",")}
    return lines[1] if family.strip().lower() in families else None


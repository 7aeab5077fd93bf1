"""The whole machine's CPU time, shared by the benches that report how busy the cores were."""

from __future__ import annotations

import os
from pathlib import Path

TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (Linux /proc/stat; idle and
    iowait are not busy). Busy ticks between two calls, times TICK_SECONDS, are CPU-seconds spent by
    every process, other work included."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)

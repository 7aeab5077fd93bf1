"""Free TCP ports for processes that bind them later: the dev runner, launchers, test fixtures.

Letting the OS choose (bind to port 0) hands out a port from the ephemeral range, the very range
every outgoing connection on the machine takes its source port from. Between choosing the port and
the child process binding it, any connection (a health probe, an S3 request) can take it, and the
child fails with "address in use". Ports are drawn *below* the ephemeral range instead, where only
explicit binds land: sequentially from a random start per process, so one process never hands out
the same port twice and two processes rarely overlap; each one is checked free before it is given.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

__all__ = ["free_port"]

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000  # well above the ports of well-known services and their defaults


def _span() -> tuple[int, int]:
    """[low, high) below the ephemeral range (Linux default 32768-60999)."""
    try:
        ephemeral_low = int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    high = max(ephemeral_low, _LOWEST + 1000)
    return _LOWEST, high


_LOW, _HIGH = _span()
_lock = threading.Lock()
_next = random.randrange(_LOW, _HIGH)


def _is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that is free now and that this process has not handed out before."""
    global _next
    with _lock:
        for _ in range(_HIGH - _LOW):
            port = _next
            _next = _LOW if _next + 1 >= _HIGH else _next + 1
            if _is_free(host, port):
                return port
    raise OSError(f"no free TCP port on {host} in {_LOW}-{_HIGH - 1}")

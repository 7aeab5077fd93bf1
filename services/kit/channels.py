"""Channels for service-to-service calls.

An address is ``host:port`` or a comma-separated list of them (every replica of the callee, as
the dev runner passes them). Calls are balanced round robin over all of them, and over every
address a DNS name resolves to (a compose service scaled to N replicas), skipping replicas whose
connection is down.
"""

from __future__ import annotations

import ipaddress

import grpc

from services.kit import tracing

__all__ = ["CHANNEL_OPTIONS", "channel_target", "insecure_channel", "secure_channel"]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    # pick_first (grpc's default) would send every call to the first replica that answers.
    ("grpc.lb_policy_name", "round_robin"),
)


def channel_target(address: str) -> str:
    """The gRPC target for one address or a comma-separated list: ``ipv4:a:1,b:2`` for several
    IP literals (``localhost`` counts as 127.0.0.1), the address itself otherwise (grpc's DNS
    resolver, which returns every A record of a name)."""
    parts = [p.strip() for p in address.split(",") if p.strip()]
    if len(parts) <= 1:
        return parts[0] if parts else address
    families: set[int] = set()
    hosts: list[str] = []
    for part in parts:
        host, sep, port = part.rpartition(":")
        host = "127.0.0.1" if host == "localhost" else host
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise ValueError(
                f"a list of addresses must be IP:port pairs (or one DNS name for all replicas), got {part!r}"
            ) from None
        if not sep or not port.isdigit():
            raise ValueError(f"address must be host:port, got {part!r}")
        families.add(ip.version)
        hosts.append(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    if len(families) > 1:
        raise ValueError(f"a list of addresses must be all IPv4 or all IPv6, got {address!r}")
    return f"ipv{families.pop()}:{','.join(hosts)}"


# Interceptors are taken when a channel opens: services open theirs after serve() configured tracing.
def insecure_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        channel_target(address), options=CHANNEL_OPTIONS, interceptors=tracing.client_interceptors()
    )


def secure_channel(address: str, root_certificates: bytes | None = None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    return grpc.aio.secure_channel(
        channel_target(address), credentials, options=CHANNEL_OPTIONS, interceptors=tracing.client_interceptors()
    )

"""Channels for service-to-service calls."""

from __future__ import annotations

import grpc

from services.kit import tracing

__all__ = ["CHANNEL_OPTIONS", "insecure_channel", "secure_channel"]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
)


# Interceptors are taken when a channel opens: services open theirs after serve() configured tracing.
def insecure_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=tracing.client_interceptors())


def secure_channel(address: str, root_certificates: bytes | None = None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    return grpc.aio.secure_channel(
        address, credentials, options=CHANNEL_OPTIONS, interceptors=tracing.client_interceptors()
    )

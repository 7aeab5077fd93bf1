"""Prometheus metrics per RPC (count by code, latency, in flight) and the HTTP endpoint."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = ["RPC_IN_FLIGHT", "RPC_LATENCY", "RPC_TOTAL", "start_metrics_server"]

RPC_TOTAL = Counter(
    "viarte_rpc_total", "RPCs handled, by final status code.", ["service", "method", "code"]
)
RPC_LATENCY = Histogram(
    "viarte_rpc_duration_seconds",
    "RPC handling time (streams: until the stream ends).",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600),
)
RPC_IN_FLIGHT = Gauge("viarte_rpc_in_flight", "RPCs being handled now.", ["service", "method"])


def start_metrics_server(port: int, host: str = "127.0.0.1") -> int:
    """Serve /metrics; port 0 picks a free one. Returns the bound port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)

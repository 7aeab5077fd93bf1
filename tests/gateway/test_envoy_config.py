"""The generated Envoy config: structure, and Envoy's own verdict (`envoy --mode validate`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway.config import GatewayConfig
from gateway.envoy import EnvoyError, validate_config
from gateway.envoy_config import INTERNAL_SERVICES, PUBLIC_SERVICES, build_bootstrap, upstreams
from services.kit.config import load_config


def _manager(bootstrap: dict) -> dict:
    listener = bootstrap["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def _routes(bootstrap: dict) -> list[dict]:
    return _manager(bootstrap)["route_config"]["virtual_hosts"][0]["routes"]


def test_defaults_follow_the_mesh_ports() -> None:
    config = GatewayConfig(static_dir="")
    ports = {u.name: u.port for u in upstreams(config)}
    assert ports == {"auth": 50051, "storage": 50052, "inference": 50053, "render": 50054, "account": 50055}
    bootstrap = build_bootstrap(config)
    assert bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] == 8800
    assert bootstrap["admin"]["address"]["socket_address"]["port_value"] == 9901


def test_config_comes_from_the_mesh_environment() -> None:
    env = {
        "VIARTE_AUTH_ADDRESS": "auth:6001",
        "VIARTE_GATEWAY_PORT": "9000",
        "VIARTE_RENDER_ADDRESS": "10.0.0.7:7",
        "VIARTE_GATEWAY_STATIC_DIR": "",
    }
    config = load_config(GatewayConfig, env)
    clusters = {c["name"]: c for c in build_bootstrap(config)["static_resources"]["clusters"]}
    auth_address = clusters["auth"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"
    ]
    assert auth_address["socket_address"] == {"address": "auth", "port_value": 6001}
    assert clusters["auth"]["type"] == "STRICT_DNS"
    assert clusters["render"]["type"] == "STATIC"
    assert config.port == 9000


def test_filters_in_order_and_clusters_are_http2_with_grpc_health_checks() -> None:
    bootstrap = build_bootstrap(GatewayConfig(static_dir=""))
    names = [f["name"] for f in _manager(bootstrap)["http_filters"]]
    assert names == [
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.cors",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.router",
    ]
    for cluster in bootstrap["static_resources"]["clusters"]:
        options = cluster["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]
        assert "http2_protocol_options" in options["explicit_http_config"]
        assert cluster["health_checks"][0]["grpc_health_check"] == {"service_name": ""}


def test_routes_public_services_only_with_stream_limits() -> None:
    routes = _routes(build_bootstrap(GatewayConfig(static_dir="", max_stream_duration_seconds=1800)))
    matched = {r["match"].get("prefix") or r["match"].get("path"): r for r in routes}
    for cluster, services in PUBLIC_SERVICES.items():
        for service in services:
            assert matched[f"/{service}/"]["route"]["cluster"] == cluster
    for internal in INTERNAL_SERVICES:
        assert not any(internal in key for key in matched)
    watch = matched["/viarte.inference.v1.GenerationService/WatchGenerationJob"]["route"]
    assert watch["timeout"] == "0s"
    assert watch["max_stream_duration"]["max_stream_duration"] == "1800s"
    assert all(r["route"]["timeout"] == "0s" for r in routes if "route" in r)


def test_cors_exposes_the_grpc_status_headers() -> None:
    config = GatewayConfig(static_dir="", cors_origins=("http://localhost:5173",))
    host = _manager(build_bootstrap(config))["route_config"]["virtual_hosts"][0]
    policy = host["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy["allow_origin_string_match"] == [{"exact": "http://localhost:5173"}]
    for header in ("grpc-status", "grpc-message", "grpc-status-details-bin"):
        assert header in policy["expose_headers"].split(",")


def test_static_files_are_served_with_a_spa_fallback(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "assets" / "app-1234.js").write_text("console.log(1)")
    routes = _routes(build_bootstrap(GatewayConfig(static_dir=str(tmp_path))))
    by_match = {str(sorted(r["match"].items())): r for r in routes if "direct_response" in r}
    js = next(r for r in by_match.values() if r["match"].get("path") == "/assets/app-1234.js")
    headers = {h["header"]["key"]: h["header"]["value"] for h in js["response_headers_to_add"]}
    assert headers["content-type"].startswith("text/javascript") or headers["content-type"].startswith(
        "application/javascript"
    )
    assert "immutable" in headers["cache-control"]
    fallback = routes[-1]
    assert fallback["match"]["prefix"] == "/"
    assert fallback["match"]["headers"] == [{"name": ":method", "string_match": {"exact": "GET"}}]
    assert fallback["direct_response"]["body"]["filename"] == str((tmp_path / "index.html").resolve())


def test_missing_editor_build_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="npm run build"):
        build_bootstrap(GatewayConfig(static_dir=str(tmp_path)))


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_envoy_validates_every_variant(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "index.html").write_text("<!doctype html>")
    cert, key = _self_signed(tmp_path)
    validate_config(GatewayConfig(static_dir=""))
    validate_config(
        GatewayConfig(
            static_dir=str(tmp_path / "dist"),
            tls_cert_file=str(cert),
            tls_key_file=str(key),
            rate_limit_per_second=0,
            access_log=True,
            auth_address="localhost:50051",
        )
    )


def test_envoy_rejects_a_broken_config(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(EnvoyError, match="rejected"):
        validate_config(GatewayConfig(static_dir="", tls_cert_file=str(missing), tls_key_file=str(missing)))


def test_assistant_can_have_its_own_upstream() -> None:
    routes = _routes(build_bootstrap(GatewayConfig(static_dir="", assistant_address="127.0.0.1:50060")))
    clusters = {r["match"].get("prefix") or r["match"]["path"]: r["route"]["cluster"] for r in routes}
    assert clusters["/viarte.inference.v1.AssistantService/"] == "assistant"
    assert clusters["/viarte.inference.v1.AssistantService/Chat"] == "assistant"
    assert clusters["/viarte.inference.v1.GenerationService/"] == "inference"
    default = _routes(build_bootstrap(GatewayConfig(static_dir="")))
    assert all(r["route"]["cluster"] != "assistant" for r in default)
    validate_config(GatewayConfig(static_dir="", assistant_address="127.0.0.1:50060"))


def test_router_skips_per_request_dynamic_stats_and_envoy_headers() -> None:
    router = _manager(build_bootstrap(GatewayConfig(static_dir="")))["http_filters"][-1]["typed_config"]
    assert router["dynamic_stats"] is False and router["suppress_envoy_headers"] is True


def test_envoy_workers_follow_the_config_else_the_usable_cores() -> None:
    import os

    from gateway.envoy import envoy_concurrency

    assert envoy_concurrency(GatewayConfig(envoy_concurrency=3)) == 3
    assert envoy_concurrency(GatewayConfig()) == len(os.sched_getaffinity(0))

"""The compose deployment's Envoy config: made by the gateway's generator from deploy/envoy/gateway.env,
accepted by `envoy --mode validate` (the same release as the image), consistent with compose."""

from __future__ import annotations

import dataclasses
import datetime
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewayConfig
from gateway.envoy import envoy_binary
from services.kit.config import env_names
from tests.deploy.helpers import COMPOSE, DEPLOY, DOCKER, compose_model, load_script, parse_dockerfile

generate = load_script(DEPLOY / "envoy" / "generate.py")


def _validate(path: Path) -> None:
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "error"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"envoy rejected {path}:\n{result.stdout}\n{result.stderr}"


def _editor_build(tmp: Path) -> Path:
    """A vite build's shape: index.html plus hashed assets (the real build where one exists)."""
    real = DEPLOY.parent / "gateway" / "editor" / "dist"
    if (real / "index.html").is_file():
        return real
    dist = tmp / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><script type="module" src="/assets/index-3f2a.js"></script>')
    (dist / "assets" / "index-3f2a.js").write_text("console.log('editor')")
    (dist / "assets" / "index-9c1d.css").write_text("body{margin:0}")
    return dist


def _bootstrap(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_gateway_env_names_are_gateway_config_fields() -> None:
    values = generate.read_env_file(DEPLOY / "envoy" / "gateway.env")
    known = {n for f in dataclasses.fields(GatewayConfig) for n in env_names(GatewayConfig, f.name)}
    assert set(values) <= known, set(values) - known
    config = generate.compose_gateway_config()
    assert config.host == "0.0.0.0"
    for name in ("auth_address", "storage_address", "inference_address", "render_address"):
        assert not getattr(config, name).startswith("127.0.0.1"), name


def test_compose_config_with_the_editor_validates(tmp_path: Path) -> None:
    dist = _editor_build(tmp_path)
    out = generate.generate(generate.compose_gateway_config(static_dir=str(dist)), tmp_path / "envoy.yaml")
    _validate(out)
    bootstrap = _bootstrap(out)
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    model = compose_model(COMPOSE, tmp=tmp_path)
    for name in ("auth", "storage", "inference", "render"):
        address = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        socket = address["socket_address"]
        assert socket["address"] == name and clusters[name]["type"] == "STRICT_DNS"
        probe = model["services"][name]["healthcheck"]["test"][-1]
        assert probe == f"127.0.0.1:{socket['port_value']}", f"Envoy and compose disagree on {name}'s port"
    listener = bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]
    published = model["services"]["envoy"]["ports"][0]
    target = published["target"] if isinstance(published, dict) else int(str(published).rsplit(":", 1)[1])
    assert (listener["address"], listener["port_value"]) == ("0.0.0.0", int(target))
    routes = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    files = [
        r["direct_response"]["body"]["filename"]
        for r in routes["route_config"]["virtual_hosts"][0]["routes"]
        if "direct_response" in r
    ]
    assert str((dist / "index.html").resolve()) in files
    admin = bootstrap["admin"]["address"]["socket_address"]
    assert admin["address"] == "127.0.0.1"  # never published; the healthcheck runs inside the container


def test_api_only_and_tls_configs_validate(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "studio.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    (tmp_path / "tls_cert").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tls_key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    assert generate.main(["--output", str(tmp_path / "api.yaml")]) == 0
    _validate(tmp_path / "api.yaml")
    tls = [f"VIARTE_GATEWAY_TLS_CERT_FILE={tmp_path / 'tls_cert'}", f"VIARTE_GATEWAY_TLS_KEY_FILE={tmp_path / 'tls_key'}"]
    assert generate.main(["--output", str(tmp_path / "tls.yaml"), "--set", tls[0], "--set", tls[1]]) == 0
    _validate(tmp_path / "tls.yaml")
    chain = _bootstrap(tmp_path / "tls.yaml")["static_resources"]["listeners"][0]["filter_chains"][0]
    assert chain["transport_socket"]["name"] == "envoy.transport_sockets.tls"
    with pytest.raises(SystemExit):
        generate.main(["--set", "no-equals-sign"])


def test_image_builds_the_same_config_with_the_tested_envoy_release() -> None:
    dockerfile = parse_dockerfile(DOCKER / "envoy.Dockerfile")
    runs = " ".join(dockerfile.stages[1].all("RUN"))
    assert "deploy/envoy/generate.py --static-dir /srv/editor" in runs
    assert any("/src/gateway/editor/dist/ /srv/editor/" in c for c in dockerfile.final.all("COPY"))
    assert any("envoy --mode validate" in r for r in dockerfile.final.all("RUN"))
    image = dockerfile.final.base
    assert image.startswith("envoyproxy/envoy:v")
    version = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    tested = re.search(r"/(\d+\.\d+\.\d+)/", version)
    assert tested is not None and image == f"envoyproxy/envoy:v{tested[1]}"


def test_browsers_reach_s3_only_through_the_envoy_front(tmp_path: Path) -> None:
    """SeaweedFS is not published; Envoy's S3 front is, at the address storage signs presigned URLs
    for, and it proxies to the S3 endpoint storage itself uses."""
    from urllib.parse import urlsplit

    from gateway.envoy_config import S3_FRONT_CLUSTER, S3_FRONT_LISTENER
    from tests.deploy.helpers import environment

    out = generate.generate(generate.compose_gateway_config(), tmp_path / "envoy.yaml")
    bootstrap = _bootstrap(out)
    listeners = {item["name"]: item for item in bootstrap["static_resources"]["listeners"]}
    front = listeners[S3_FRONT_LISTENER]["address"]["socket_address"]
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    upstream = clusters[S3_FRONT_CLUSTER]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    model = compose_model(COMPOSE, tmp=tmp_path)
    services = model["services"]
    assert not services["s3"].get("ports"), "SeaweedFS must not be published: browsers use the S3 front"
    storage = environment(services["storage"])
    internal = urlsplit(storage["VIARTE_STORAGE_S3_ENDPOINT"])
    assert upstream["address"]["socket_address"] == {"address": internal.hostname, "port_value": internal.port}
    published = dict(_published(p) for p in services["envoy"]["ports"])
    assert front["address"] == "0.0.0.0" and front["port_value"] in published
    public = urlsplit(storage["VIARTE_STORAGE_S3_PUBLIC_ENDPOINT"])
    assert published[front["port_value"]] == (public.hostname, public.port) == ("127.0.0.1", 8801)  # loopback by default


def _published(port: Any) -> tuple[int, tuple[str, int]]:
    """container port → (host ip, host port) of a compose port, long or short syntax."""
    if isinstance(port, dict):
        return int(port["target"]), (str(port.get("host_ip", "")), int(port["published"]))
    host_ip, host_port, target = str(port).split("/")[0].rsplit(":", 2)
    return int(target), (host_ip, int(host_port))

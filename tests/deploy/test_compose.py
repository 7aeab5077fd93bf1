"""deploy/compose.yaml, checked without a container engine: docker-compose resolves and validates it,
and every setting it passes is one the services' config dataclasses know, parse and need."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Any

import pytest

from services.kit.config import Secret, ServiceConfig, env_names, load_config
from tests.deploy.helpers import (
    COMPOSE,
    COMPOSE_TLS,
    DEPLOY,
    GRPC_SERVICES,
    SERVICE_PACKAGES,
    compose_model,
    config_class,
    environment,
    load_script,
)

# The one-shot model download job reads the inference and render configs (their model folders).
JOB_PACKAGES = {"models": ("inference", "render")}
SECRETS_MOUNT = "/run/secrets/"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compose_model(COMPOSE, tmp=tmp_path_factory.mktemp("compose"))


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("secrets") / "secrets"
    load_script(DEPLOY / "make_secrets.py").make_secrets(directory)
    return directory


def _classes(service: str) -> list[type[ServiceConfig]]:
    packages = JOB_PACKAGES.get(service) or (SERVICE_PACKAGES[service],)
    return [config_class(p) for p in packages]


def _known_names(cls: type[ServiceConfig]) -> dict[str, str]:
    """Variable name → field name, for both spellings of every field."""
    names: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        for name in env_names(cls, f.name):
            names[name] = f.name
    return names


def _field_of(cls: type[ServiceConfig], variable: str) -> str | None:
    known = _known_names(cls)
    if variable in known:
        return known[variable]
    if variable.endswith("_FILE"):
        return known.get(variable.removesuffix("_FILE"))
    return None


def _resolve_secret_paths(env: dict[str, str], secrets_dir: Path) -> dict[str, str]:
    return {
        k: str(secrets_dir / v.removeprefix(SECRETS_MOUNT)) if k.endswith("_FILE") and v.startswith(SECRETS_MOUNT) else v
        for k, v in env.items()
    }


def _hf_variables() -> set[str]:
    import huggingface_hub.constants as hf_constants

    return set(__import__("re").findall(r"\"(HF_[A-Z_]+)\"", inspect.getsource(hf_constants)))


def test_compose_file_and_tls_overlay_validate(tmp_path: Path) -> None:
    base = compose_model(COMPOSE, tmp=tmp_path)
    tls = compose_model(COMPOSE, COMPOSE_TLS, tmp=tmp_path)
    default = {name for name, svc in base["services"].items() if not svc.get("profiles")}
    assert default == {"postgres", "s3", "auth", "storage", "models", "inference", "render", "account", "envoy"}
    assert tls["services"]["envoy"]["build"]["args"] == {"TLS": "true"}
    assert {"tls_cert", "tls_key"} <= set(tls["secrets"])


@pytest.mark.parametrize("service", [*GRPC_SERVICES, "models"])
def test_every_variable_is_a_config_field(model: dict[str, Any], service: str) -> None:
    classes = _classes(service)
    hf = _hf_variables()
    for variable in environment(model["services"][service]):
        if variable.startswith("HF_"):
            assert variable in hf, f"{service}: {variable} is not a huggingface_hub setting"
            continue
        assert variable.startswith("VIARTE_"), f"{service}: {variable} is read by nobody"
        owners = [c.__name__ for c in classes if _field_of(c, variable)]
        assert owners, f"{service}: {variable} is not a field of {[c.__name__ for c in classes]}"


def _required_fields(cls: type[ServiceConfig]) -> dict[str, str]:
    """Fields a production deployment must set: secrets, the database, and every dev default that
    points at this machine's loopback (the bind host, the addresses of other services, S3)."""
    hints = typing.get_type_hints(cls)
    required: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required[f.name] = "has no default"
        elif hints[f.name] is Secret:
            required[f.name] = "is a secret"
        elif f.name == "database_url":
            required[f.name] = "selects the database (default: SQLite in the container)"
        elif isinstance(default, str) and ("127.0.0.1" in default or "localhost" in default):
            required[f.name] = f"defaults to loopback ({default})"
    return required


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_required_settings_are_set_and_load(model: dict[str, Any], secrets_dir: Path, service: str) -> None:
    (cls,) = _classes(service)
    env = environment(model["services"][service])
    set_fields = {_field_of(cls, v): v for v in env}
    optional_secrets = {"assistant_api_key"}  # empty key = assistant off; still mounted from a file
    for name, why in _required_fields(cls).items():
        assert name in set_fields, f"{service}: {name} {why} but compose does not set it"
        if why == "is a secret" or name == "database_url":
            assert set_fields[name].endswith("_FILE"), f"{service}: {name} must come from a secret file"
    config = load_config(cls, _resolve_secret_paths(env, secrets_dir))
    assert config.host == "0.0.0.0"
    assert config.log_format == "json"
    assert config.metrics_port > 0
    assert getattr(config, "database_url", "").startswith("postgresql+psycopg://")
    for name, why in _required_fields(cls).items():
        value = getattr(config, name)
        if why.startswith("defaults to loopback"):
            assert "127.0.0.1" not in str(value) and "localhost" not in str(value), f"{service}: {name}={value}"
        if why == "is a secret" and name not in optional_secrets:
            assert isinstance(value, Secret) and len(value.reveal()) >= 32, f"{service}: {name} is weak"


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_healthcheck_probes_the_configured_port(model: dict[str, Any], secrets_dir: Path, service: str) -> None:
    spec = model["services"][service]
    (cls,) = _classes(service)
    config = load_config(cls, _resolve_secret_paths(environment(spec), secrets_dir))
    assert spec["healthcheck"]["test"] == ["CMD", "python", "-m", "services.kit.probe", f"127.0.0.1:{config.port}"]
    assert spec["restart"] == "unless-stopped"
    assert spec["init"] is True


def test_infrastructure_has_healthchecks_and_services_wait_for_them(model: dict[str, Any]) -> None:
    services = model["services"]
    for name, spec in services.items():
        if name == "models":
            assert spec["restart"] == "no"  # one-shot job
            continue
        assert spec.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert spec["restart"] == "unless-stopped", name
    for name in GRPC_SERVICES:
        for dependency, condition in services[name]["depends_on"].items():
            expected = "service_completed_successfully" if dependency == "models" else "service_healthy"
            assert condition["condition"] == expected, f"{name} → {dependency}"
    assert {d for d in services["storage"]["depends_on"]} >= {"postgres", "s3", "auth"}
    for name in ("inference", "render"):
        assert services[name]["depends_on"]["models"]["condition"] == "service_completed_successfully"
    envoy = services["envoy"]["depends_on"]
    assert envoy["auth"]["condition"] == envoy["storage"]["condition"] == "service_healthy"


def _mounts(spec: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    found: dict[str, tuple[str, bool]] = {}
    for volume in spec.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            found[target] = (source, bool(mode and "ro" in mode[0]))
        else:
            found[volume["target"]] = (volume.get("source", ""), bool(volume.get("read_only")))
    return found


def test_named_volumes_for_database_objects_and_models(model: dict[str, Any]) -> None:
    services = model["services"]
    assert {"pgdata", "objects", "models"} <= set(model["volumes"])
    assert _mounts(services["postgres"])["/var/lib/postgresql/data"] == ("pgdata", False)
    assert _mounts(services["s3"])["/data"] == ("objects", False)
    assert _mounts(services["models"])["/models"] == ("models", False)
    for name in ("inference", "render"):
        assert _mounts(services[name])["/models"] == ("models", True), f"{name} must mount the models read-only"
        assert environment(services[name])["HF_HUB_OFFLINE"] == "1", f"{name} must never download weights"


def test_gpu_reservations_and_resource_limits(model: dict[str, Any]) -> None:
    services = model["services"]
    for name in ("inference", "render"):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia"
        # video: the NVIDIA runtime mounts the NVENC/NVDEC libraries only with this capability.
        assert {"gpu", "video"} <= set(device["capabilities"])
    for name, spec in services.items():
        limits = spec["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and limits["memory"], name


def test_secrets_come_from_files_never_from_values(model: dict[str, Any], secrets_dir: Path) -> None:
    declared = model["secrets"]
    for name, spec in declared.items():
        assert Path(spec["file"]).parent == DEPLOY / "secrets", name
        assert (secrets_dir / name).is_file(), f"deploy/make_secrets.py does not create {name}"
    for name, spec in model["services"].items():
        mounted = {s if isinstance(s, str) else s["source"] for s in spec.get("secrets", [])}
        assert mounted <= set(declared), name
        for variable, value in environment(spec).items():
            if value.startswith(SECRETS_MOUNT):
                assert value.removeprefix(SECRETS_MOUNT) in mounted, f"{name}: {variable} names an unmounted secret"
            lowered = variable.lower()
            if any(word in lowered for word in ("secret", "password", "token", "api_key", "database_url")):
                assert variable.endswith(("_FILE", "_PATH")), f"{name}: {variable} is passed as a value"


def test_make_secrets_is_idempotent_and_rotates_one_secret(tmp_path: Path) -> None:
    make = load_script(DEPLOY / "make_secrets.py")
    directory = tmp_path / "secrets"
    first = make.make_secrets(directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    before = {p.name: p.read_text() for p in directory.iterdir()}
    assert make.make_secrets(directory) == []  # nothing new, nothing overwritten
    assert {p.name: p.read_text() for p in directory.iterdir()} == before
    make.make_secrets(directory, rotate=["render_db_password"])
    after = {p.name: p.read_text() for p in directory.iterdir()}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"render_db_password", "render_database_url"}
    assert after["render_database_url"].endswith(f":{after['render_db_password']}@postgres:5432/render")
    assert len(first) == len(make.GENERATED) + len(make.PROVIDED)
    with pytest.raises(ValueError):
        make.make_secrets(directory, rotate=["groq_api_key"])


def test_compose_file_has_no_duplicate_keys() -> None:
    """Compose v2 parses YAML strictly: a repeated key (e.g. two `<<` merges) is an error there."""
    import yaml

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        keys = [k.value for k, _ in node.value]
        assert len(keys) == len(set(keys)), f"line {node.start_mark.line + 1}: repeated keys"
        return loader.construct_mapping(node)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    for path in (COMPOSE, COMPOSE_TLS):
        yaml.load(path.read_text(), Strict)  # a SafeLoader subclass


def test_pull_job_and_services_agree_on_the_models(model: dict[str, Any], secrets_dir: Path) -> None:
    services = model["services"]
    job = environment(services["models"])
    inference_cls, render_cls = config_class("inference"), config_class("render")
    pulled = load_config(inference_cls, job)
    served = load_config(inference_cls, _resolve_secret_paths(environment(services["inference"]), secrets_dir))
    for name in ("models_dir", "models", "registry_path", "face_models_dir", "face_pack", "face_swapper"):
        assert getattr(pulled, name) == getattr(served, name), name
    assert served.models and not served.build_tiny_models and not served.allow_download
    assert job["HF_HOME"] == environment(services["inference"])["HF_HOME"]  # the same hub cache
    upscaler = load_config(render_cls, _resolve_secret_paths(environment(services["render"]), secrets_dir))
    pulled_render = load_config(render_cls, job)
    assert (pulled_render.model_dir, pulled_render.upscale_model) == (upscaler.model_dir, upscaler.upscale_model)
    assert not upscaler.upscale_allow_tiny
    from services.inference.models.registry import load_registry

    registry = load_registry()
    for model_id in served.models:
        spec = registry.get(model_id)
        assert spec is not None and not spec.tiny, f"{model_id} must be a real registry model"


def test_env_example_settings_all_reach_compose(tmp_path: Path) -> None:
    example = DEPLOY / ".env.example"
    names = [line.split("=", 1)[0] for line in example.read_text().splitlines() if line and not line.startswith("#")]
    text = COMPOSE.read_text() + COMPOSE_TLS.read_text()
    unused = [n for n in names if n != "COMPOSE_PROJECT_NAME" and "${" + n not in text]
    assert not unused, f".env.example settings nobody reads: {unused}"
    model = compose_model(COMPOSE, COMPOSE_TLS, tmp=tmp_path, env_file=example)
    assert environment(model["services"]["inference"])["VIARTE_INFERENCE_MODELS"]


def test_every_service_runs_replicas_on_postgres_behind_dns(model: dict[str, Any], secrets_dir: Path) -> None:
    """N replicas per service (issue 14): a `deploy.replicas` each, on the database (never a
    container's SQLite file), reached by compose name (DNS → every replica), with scratch space
    per container (no named volume two replicas would share)."""
    services = model["services"]
    for name in GRPC_SERVICES:
        spec = services[name]
        assert int(spec["deploy"]["replicas"]) >= 1, name
        assert "container_name" not in spec and "ports" not in spec, f"{name}: a fixed name or port blocks replicas"
        env = environment(spec)
        assert env[f"VIARTE_{name.upper()}_DATABASE_URL_FILE"].startswith(SECRETS_MOUNT), name
        for target, (source, _read_only) in _mounts(spec).items():
            assert source in ("", "models"), f"{name}: {source} at {target} would be shared by its replicas"
        assert env.get("VIARTE_AUTH_ADDRESS", "auth:50051") == "auth:50051"
        # Every service reaches account by its compose name (job ends, admissions: issue 16).
        assert env["VIARTE_ACCOUNT_ADDRESS"] == "account:50055", name
    assert {int(services[n]["deploy"]["replicas"]) for n in ("auth", "storage", "render", "account")} == {2}


def test_seaweedfs_matches_the_embedded_launchers_hardening(model: dict[str, Any], secrets_dir: Path) -> None:
    """Compose's SeaweedFS gets what services/storage/s3server.py gives the dev one: master and
    filer HTTP APIs off, and every JWT key the launcher sets (volume reads signed too)."""
    import tomllib

    from services.storage.s3server import jwt_env

    assert "-disableHttp" in model["services"]["s3"]["command"]
    security = tomllib.loads((secrets_dir / "seaweedfs_security.toml").read_text())
    root = (secrets_dir / "s3_jwt_key").read_text().strip()
    launcher = jwt_env(root)
    assert security["jwt"]["signing"]["key"] == launcher["WEED_JWT_SIGNING_KEY"]
    assert security["jwt"]["signing"]["read"]["key"] == launcher["WEED_JWT_SIGNING_READ_KEY"]
    assert security["jwt"]["filer_signing"]["key"] == launcher["WEED_JWT_FILER_SIGNING_KEY"]
    assert security["jwt"]["filer_signing"]["read"]["key"] == launcher["WEED_JWT_FILER_SIGNING_READ_KEY"]

"""Ray in the deployment files (issue 15), read without a container engine or a Kubernetes cluster:
compose's `ray` profile (a head, a GPU worker node, the services pointed at it), the KubeRay
RayCluster manifest, and the GPU images' share of the lock that carries Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.inference.config import InferenceConfig
from services.kit.config import load_config
from tests.deploy.helpers import COMPOSE, DEPLOY, DOCKER, REPO, compose_model, environment, parse_dockerfile

KUBERAY = DEPLOY / "kuberay" / "raycluster.yaml"
INFERENCE_IMAGE = "viarte/inference:dev"


@pytest.fixture(scope="module")
def ray_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose model as `VIARTE_EXECUTOR=ray docker compose --profile ray` resolves it."""
    tmp = tmp_path_factory.mktemp("compose-ray")
    env_file = tmp / "ray.env"
    env_file.write_text("VIARTE_EXECUTOR=ray\n")
    return compose_model(COMPOSE, tmp=tmp, env_file=env_file)


def _flag(args: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")), None)


def test_ray_profile_holds_a_head_and_a_gpu_node_of_the_inference_image(ray_model: dict[str, Any]) -> None:
    services = ray_model["services"]
    profiled = {name for name, svc in services.items() if svc.get("profiles")}
    assert profiled == {"ray-head", "ray-gpu"}
    for name in profiled:
        svc = services[name]
        assert svc["profiles"] == ["ray"]
        assert svc["image"] == services["inference"]["image"] == INFERENCE_IMAGE  # same Ray, same code
        assert svc["entrypoint"][:3] == ["ray", "start", "--block"]
        assert svc["healthcheck"]["test"], name
        assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"]
    head, gpu = services["ray-head"], services["ray-gpu"]
    assert "--head" in head["command"] and _flag(head["command"], "num-gpus") == "0"
    assert _flag(head["command"], "num-cpus") == "0"  # actors only on GPU nodes
    port = _flag(head["command"], "port")
    assert _flag(gpu["command"], "address") == f"ray-head:{port}"
    assert gpu["depends_on"]["ray-head"]["condition"] == "service_healthy"
    # One GPU node per host with every GPU of it: one actor per GPU, Ray assigns them.
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == "all" and "gpu" in device["capabilities"]
    assert gpu["deploy"]["resources"]["limits"]["memory"]
    # The object store lives in /dev/shm: the shm is larger than the store.
    store = int(_flag(gpu["command"], "object-store-memory") or 0)
    assert store and _bytes(gpu["shm_size"]) > store
    # Actors read the weights where the services' config says, offline.
    volumes = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" + (":ro" if v.get("read_only") else "")
               for v in gpu["volumes"]]  # fmt: skip
    assert "models:/models:ro" in volumes
    assert environment(gpu)["HF_HUB_OFFLINE"] == "1"
    assert environment(gpu)["HF_HOME"] == environment(services["inference"])["HF_HOME"]


def _bytes(size: Any) -> int:
    if isinstance(size, int):
        return size
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = str(size).lower().rstrip("b")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def test_services_join_the_cluster_when_the_executor_is_ray(ray_model: dict[str, Any], tmp_path: Path) -> None:
    services = ray_model["services"]
    port = _flag(services["ray-head"]["command"], "port")
    for name in ("inference", "render"):
        env = environment(services[name])
        assert env[f"VIARTE_{name.upper()}_EXECUTOR"] == "ray"
        assert env[f"VIARTE_{name.upper()}_RAY_ADDRESS"] == f"ray-head:{port}"
    # The inference service's own config reads them (the only reader of its environment).
    env = {k: v for k, v in environment(services["inference"]).items() if not k.endswith("_FILE")}
    config = load_config(InferenceConfig, env)
    assert config.executor == "ray" and config.ray_address == f"ray-head:{port}"
    # Without VIARTE_EXECUTOR the services keep their local worker processes.
    default = compose_model(COMPOSE, tmp=tmp_path)["services"]
    assert environment(default["inference"])["VIARTE_INFERENCE_EXECUTOR"] == "local"
    assert environment(default["render"])["VIARTE_RENDER_EXECUTOR"] == "local"


@pytest.fixture(scope="module")
def raycluster() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(KUBERAY.read_text()) if d]
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    return cluster  # type: ignore[no-any-return]


def _containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    return template["spec"]["containers"]  # type: ignore[no-any-return]


def test_kuberay_cluster_has_a_head_and_one_gpu_per_worker_pod(raycluster: dict[str, Any]) -> None:
    assert raycluster["apiVersion"] == "ray.io/v1"
    locked = subprocess.run([sys.executable, str(DEPLOY / "lock.py"), "version", "ray"], capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    assert raycluster["spec"]["rayVersion"] == locked  # drivers and nodes must run the same Ray
    head = raycluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0" and head["rayStartParams"]["num-cpus"] == "0"
    (group,) = raycluster["spec"]["workerGroupSpecs"]
    assert group["rayStartParams"]["num-gpus"] == "1"
    for template in (head["template"], group["template"]):
        (container,) = _containers(template)
        assert container["image"] == INFERENCE_IMAGE
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["limits"]["memory"]
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True
        assert template["spec"]["securityContext"]["runAsUser"] == 10001  # the image's user
    (worker,) = _containers(group["template"])
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == 1
    mounts = {m["mountPath"]: m for m in worker["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True and "/dev/shm" in mounts
    volumes = {v["name"]: v for v in group["template"]["spec"]["volumes"]}
    shm = volumes[mounts["/dev/shm"]["name"]]["emptyDir"]
    assert shm["medium"] == "Memory"
    store = int(group["rayStartParams"]["object-store-memory"])
    assert _bytes(shm["sizeLimit"].replace("Gi", "g")) > store
    # The services' address for it: KubeRay's head Service is <name>-head-svc.
    assert f"{raycluster['metadata']['name']}-head-svc" in KUBERAY.read_text()


@pytest.mark.parametrize("image", ["inference", "render"])
def test_gpu_images_install_the_ray_extra_from_the_lock(image: str) -> None:
    dockerfile = parse_dockerfile(DOCKER / f"{image}.Dockerfile")
    install = " ".join(r for s in dockerfile.stages[:-1] for r in s.all("RUN"))
    assert "--extra ray" in install and "--require-hashes" in install and "import torch" in install
    assert ", ray;" in install or " ray;" in install  # the build fails without it
    select = install.split("lock.py select", 1)[1].split(">", 1)[0].replace("\\", " ").split()
    chosen = subprocess.run([sys.executable, str(DEPLOY / "lock.py"), "select", *select], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "\nray==" in chosen and "--hash=sha256:" in chosen.split("\nray==", 1)[1].split("\n\n")[0]

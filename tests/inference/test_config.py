"""InferenceConfig is composed of parts declared once; the environment names stay flat, and each
device worker receives its part whole (no service secret rides along)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from services.inference.assistant.config import AssistantConfig
from services.inference.config import InferenceConfig
from services.inference.faceswap.config import FaceSwapConfig
from services.inference.server import worker_setup
from services.inference.worker.config import WorkerConfig
from services.inference.worker.protocol import WorkerSetup
from services.kit.config import ConfigError, Secret, ServiceConfig, load_config


def test_each_field_is_declared_in_one_part() -> None:
    # The service's own fields: the mesh-wide base (addresses, prices of every job kind) is not a part.
    own = {f.name for f in dataclasses.fields(InferenceConfig)} - {f.name for f in dataclasses.fields(ServiceConfig)}
    parts = [FaceSwapConfig, AssistantConfig, WorkerConfig]
    for part in parts:
        assert {f.name for f in dataclasses.fields(part)} <= own, part.__name__
    face = {f.name for f in dataclasses.fields(FaceSwapConfig)}
    assistant = {f.name for f in dataclasses.fields(AssistantConfig)}
    assert face == {n for n in own if n.startswith("face_")}
    assert assistant == {n for n in own if n.startswith("assistant_")}


def test_flat_environment_names_reach_the_parts() -> None:
    env = {
        "VIARTE_INFERENCE_FACE_PACK": "antelopev2",
        "VIARTE_INFERENCE_FACE_PROVIDERS": "CPUExecutionProvider",
        "VIARTE_INFERENCE_ASSISTANT_API_KEY": "gsk-secret",
        "VIARTE_INFERENCE_ASSISTANT_MAX_RETRIES": "5",
        "VIARTE_INFERENCE_DTYPE": "fp16",
        "VIARTE_INFERENCE_WORKER_STALL_TIMEOUT_SECONDS": "12",
        "VIARTE_INFERENCE_FAULT_CRASH_AT_STAGE": "STAGE_DECODING",
        "VIARTE_INTERNAL_SECRET": "mesh-secret",
    }
    config = load_config(InferenceConfig, env)
    assert config.face == FaceSwapConfig(face_pack="antelopev2", face_providers=("CPUExecutionProvider",))
    assert config.assistant.assistant_api_key == Secret("gsk-secret") and config.assistant.assistant_max_retries == 5
    worker = config.worker
    assert (worker.dtype, worker.worker_stall_timeout_seconds, worker.fault_crash_at_stage) == ("fp16", 12.0, "STAGE_DECODING")
    assert worker.face_pack == "antelopev2"


def test_workers_receive_the_worker_part_whole_and_nothing_else(tmp_path) -> None:
    config = InferenceConfig(data_dir=str(tmp_path), face_det_size=320, memory_policy="vae_tiling", models_dir="/m",
                             assistant_api_key=Secret("gsk-secret"))
    setup = worker_setup(config)
    assert type(setup.config) is WorkerConfig and setup.config == config.worker
    assert (setup.config.face_det_size, setup.config.memory_policy, str(setup.config.models_path)) == (320, "vae_tiling", "/m")
    assert setup.scratch_dir == tmp_path / "inference"
    assert "gsk-secret" not in repr(dataclasses.asdict(setup)) and not hasattr(setup.config, "internal_secret")


def test_executor_choice_from_the_environment() -> None:
    """local stays the default; VIARTE_INFERENCE_EXECUTOR picks ray and the mesh-wide VIARTE_RAY_ADDRESS
    reaches it; anything else is refused at load, naming the variable."""
    import pytest

    from services.kit.config import ConfigError

    assert load_config(InferenceConfig, {}).executor == "local"
    config = load_config(InferenceConfig, {"VIARTE_INFERENCE_EXECUTOR": "ray", "VIARTE_RAY_ADDRESS": "ray://head:10001",
                                           "VIARTE_INFERENCE_RAY_ACTORS": "3"})
    assert (config.executor, config.ray_address, config.ray_actors) == ("ray", "ray://head:10001", 3)
    with pytest.raises(ConfigError, match="VIARTE_INFERENCE_EXECUTOR"):
        load_config(InferenceConfig, {"VIARTE_INFERENCE_EXECUTOR": "kubernetes"})


def test_ray_gpu_share_leaves_room_for_render_and_is_bounded() -> None:
    import pytest

    from services.kit.config import ConfigError
    from services.render.config import RenderConfig

    # Half a GPU each by default: one inference and one render actor fit on every GPU.
    assert load_config(InferenceConfig, {}).ray_gpu_share + load_config(RenderConfig, {}).ray_gpu_share <= 1
    assert load_config(InferenceConfig, {"VIARTE_INFERENCE_RAY_GPU_SHARE": "1"}).ray_gpu_share == 1.0
    for bad in ("0", "1.5", "-0.5"):
        with pytest.raises(ConfigError, match="VIARTE_INFERENCE_RAY_GPU_SHARE"):
            load_config(InferenceConfig, {"VIARTE_INFERENCE_RAY_GPU_SHARE": bad})
        with pytest.raises(ConfigError, match="VIARTE_RENDER_RAY_GPU_SHARE"):
            load_config(RenderConfig, {"VIARTE_RENDER_RAY_GPU_SHARE": bad})


def test_cpu_workers_wait_passively_on_every_core_and_gpu_workers_keep_the_defaults() -> None:
    from services.inference.worker.process import _nvidia_driver, _usable_cores, openmp_env, resolve_setup

    def setup(device: str, **config: object) -> WorkerSetup:
        return WorkerSetup(config=WorkerConfig(**config), device=device)  # type: ignore[arg-type]

    assert openmp_env(setup("cpu")) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert openmp_env(setup("cuda:0")) == {}  # the GPU path as it was
    assert openmp_env(setup("auto")) == ({} if _nvidia_driver() else {"OMP_WAIT_POLICY": "PASSIVE"})
    assert openmp_env(setup("cuda:1", omp_wait_policy="active")) == {"OMP_WAIT_POLICY": "ACTIVE"}
    assert openmp_env(setup("cpu", omp_wait_policy="")) == {}
    # Threads: every core the process may use by default (no core left idle for the server), or as configured.
    assert resolve_setup(setup("cpu")).config.worker_threads == _usable_cores() == len(os.sched_getaffinity(0))
    assert resolve_setup(setup("cpu", worker_threads=1)).config.worker_threads == 1
    with pytest.raises(ConfigError, match="OMP_WAIT_POLICY"):
        InferenceConfig(omp_wait_policy="sometimes")


def test_auto_dtype_on_cpu_is_bf16_only_where_the_cpu_runs_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    """An AVX2-only CPU emulates bf16 matmuls (~30x an fp32 one there): "auto" picks fp32 on it, bf16
    where oneDNN runs bf16 (AVX-512 and up). An explicit dtype is kept either way."""
    from services.inference.worker import process

    def dtype(native: bool, configured: str = "auto") -> str:
        monkeypatch.setattr(process, "_cpu_runs_bf16", lambda: native)
        return process.resolve_setup(WorkerSetup(config=WorkerConfig(dtype=configured), device="cpu")).config.dtype

    assert (dtype(True), dtype(False)) == ("bf16", "fp32")
    assert (dtype(False, "bf16"), dtype(True, "fp32")) == ("bf16", "fp32")
    monkeypatch.undo()
    assert isinstance(process._cpu_runs_bf16(), bool)  # this machine's answer, from torch's oneDNN check

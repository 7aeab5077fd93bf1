"""The model registry: which models this deployment serves, their tasks, limits and sources.

Pure data (no torch): the gRPC server validates requests against it; workers load from it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from viarte.inference.v1 import generation_pb2 as gen_pb2

__all__ = [
    "DEFAULT_REGISTRY_PATH",
    "Family",
    "ModelLimits",
    "ModelRegistry",
    "ModelSpec",
    "Task",
    "TrainingFootprint",
    "load_registry",
]

DEFAULT_REGISTRY_PATH = Path(__file__).with_name("registry.yaml")
_GIB = 1024**3


class Family(enum.StrEnum):
    MODELSCOPE = "modelscope"
    WAN = "wan"
    SVD = "svd"

    @property
    def proto(self) -> int:
        return {
            Family.MODELSCOPE: gen_pb2.MODEL_FAMILY_MODELSCOPE,
            Family.WAN: gen_pb2.MODEL_FAMILY_WAN,
            Family.SVD: gen_pb2.MODEL_FAMILY_SVD,
        }[self]


class Task(enum.StrEnum):
    TEXT_TO_VIDEO = "text_to_video"
    IMAGE_TO_VIDEO = "image_to_video"

    @property
    def proto(self) -> int:
        return {Task.TEXT_TO_VIDEO: gen_pb2.TASK_TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO: gen_pb2.TASK_IMAGE_TO_VIDEO}[self]

    @classmethod
    def from_proto(cls, value: int) -> Task | None:
        known: dict[int, Task] = {
            int(gen_pb2.TASK_TEXT_TO_VIDEO): cls.TEXT_TO_VIDEO, int(gen_pb2.TASK_IMAGE_TO_VIDEO): cls.IMAGE_TO_VIDEO,
        }
        return known.get(int(value))


# Which diffusers pipeline class runs each (family, task).
PIPELINE_CLASSES: Mapping[tuple[Family, Task], str] = {
    (Family.MODELSCOPE, Task.TEXT_TO_VIDEO): "TextToVideoSDPipeline",
    (Family.WAN, Task.TEXT_TO_VIDEO): "WanPipeline",
    (Family.WAN, Task.IMAGE_TO_VIDEO): "WanImageToVideoPipeline",
    (Family.SVD, Task.IMAGE_TO_VIDEO): "StableVideoDiffusionPipeline",
}


@dataclass(frozen=True)
class ModelLimits:
    """Inclusive bounds and defaults (mirrors viarte.inference.v1.ModelLimits)."""

    min_width: int
    max_width: int
    min_height: int
    max_height: int
    size_multiple: int
    min_frames: int
    max_frames: int
    frames_multiple: int
    max_steps: int
    max_guidance_scale: float
    max_prompt_chars: int
    default_width: int
    default_height: int
    default_frames: int
    default_steps: int
    default_guidance_scale: float
    default_fps: int

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ModelLimits:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown limit fields: {sorted(unknown)}")
        return cls(**{n: data[n] for n in names})

    def to_proto(self) -> gen_pb2.ModelLimits:
        return gen_pb2.ModelLimits(**{f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class TrainingFootprint:
    """What LoRA training on a model's transformer costs in device memory (registry `training:`).
    The per-token figures are measured by `bench/training_vram.py` (fp32 training copy, LoRA on the
    attention projections, batch 1) and activations scale linearly with latent tokens."""

    transformer_params: int
    dim: int
    layers: int
    spatial_compression: int
    temporal_compression: int
    patch: int
    # Bytes kept for the backward pass per latent token: every block's intermediates, or (with
    # gradient checkpointing) every block's input plus one block's intermediates while recomputed.
    activation_bytes_per_token: float
    checkpointed_bytes_per_token: float

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TrainingFootprint:
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            raise ValueError(f"training fields: expected {sorted(names)}, got {sorted(data)}")
        ints = {n: int(data[n]) for n in names if not n.endswith("_per_token")}
        return cls(**ints, activation_bytes_per_token=float(data["activation_bytes_per_token"]),
                   checkpointed_bytes_per_token=float(data["checkpointed_bytes_per_token"]))

    def tokens(self, width: int, height: int, frames: int) -> int:
        f = (frames - 1) // self.temporal_compression + 1
        side = self.spatial_compression * self.patch
        return f * (height // side) * (width // side)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    display_name: str
    family: Family
    tasks: tuple[Task, ...]
    source: str
    limits: ModelLimits
    local_path: str = ""
    variant: str = ""
    estimated_memory_bytes: int = 0
    flow_shift: float | None = None
    training: TrainingFootprint | None = None

    @property
    def tiny(self) -> bool:
        return self.source.startswith("tiny:")

    @property
    def tiny_builder(self) -> str:
        return self.source.removeprefix("tiny:")

    def pipeline_class(self, task: Task) -> str:
        return PIPELINE_CLASSES[(self.family, task)]

    def resolve_path(self, models_dir: Path) -> str:
        """Where from_pretrained loads: a local folder when there is one, else the HF repo id."""
        if self.local_path:
            path = Path(self.local_path)
            return str(path if path.is_absolute() else models_dir / path)
        candidate = models_dir / self.id
        return str(candidate) if candidate.exists() or self.tiny else self.source

    def training_memory_bytes(self, width: int, height: int, frames: int, *, rank: int = 16, batch: int = 1,
                              checkpointing: bool = False) -> int:
        """Estimated device memory of a LoRA training run: the warm pipeline, the fp32 training
        copy of the transformer, adapter + gradient + two AdamW moments (fp32, 16 bytes per LoRA
        parameter on 8 projections per block), and the activations of `batch` examples."""
        t = self.training
        if t is None:
            return 0
        lora_params = rank * 2 * t.dim * 8 * t.layers
        per_token = t.checkpointed_bytes_per_token if checkpointing else t.activation_bytes_per_token
        activations = batch * t.tokens(width, height, frames) * per_token
        return int(self.estimated_memory_bytes + 4 * t.transformer_params + 16 * lora_params + activations)

    def training_memory_proto(self) -> gen_pb2.TrainingMemory | None:
        if self.training is None:
            return None
        lim = self.limits
        shape = (lim.default_width, lim.default_height, lim.default_frames)
        return gen_pb2.TrainingMemory(
            bytes=self.training_memory_bytes(*shape), gradient_checkpointing_bytes=self.training_memory_bytes(
                *shape, checkpointing=True), width=shape[0], height=shape[1], num_frames=shape[2])

    def to_proto(self, *, loaded: bool = False) -> gen_pb2.Model:
        return gen_pb2.Model(
            id=self.id,
            display_name=self.display_name,
            family=self.family.proto,  # type: ignore[arg-type]
            tasks=[t.proto for t in self.tasks],  # type: ignore[misc]
            source=self.source,
            tiny=self.tiny,
            limits=self.limits.to_proto(),
            loaded=loaded,
            estimated_memory_bytes=self.estimated_memory_bytes,
            training_memory=self.training_memory_proto(),
        )


@dataclass(frozen=True)
class ModelRegistry:
    models: tuple[ModelSpec, ...] = field(default_factory=tuple)

    def get(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)

    def __iter__(self) -> Any:
        return iter(self.models)

    def only(self, ids: Iterable[str]) -> ModelRegistry:
        wanted = set(ids)
        return ModelRegistry(tuple(m for m in self.models if m.id in wanted))


def _spec(entry: Mapping[str, Any]) -> ModelSpec:
    family = Family(entry["family"])
    tasks = tuple(Task(t) for t in entry["tasks"])
    for task in tasks:
        if (family, task) not in PIPELINE_CLASSES:
            raise ValueError(f"model {entry['id']}: family {family} cannot do {task}")
    return ModelSpec(
        id=entry["id"],
        display_name=entry.get("display_name", entry["id"]),
        family=family,
        tasks=tasks,
        source=entry["source"],
        limits=ModelLimits.from_mapping(entry["limits"]),
        local_path=entry.get("local_path", ""),
        variant=entry.get("variant", ""),
        estimated_memory_bytes=int(float(entry.get("estimated_memory_gib", 0)) * _GIB),
        flow_shift=entry.get("flow_shift"),
        training=TrainingFootprint.from_mapping(entry["training"]) if "training" in entry else None,
    )


def load_registry(path: Path | str = DEFAULT_REGISTRY_PATH) -> ModelRegistry:
    data = yaml.safe_load(Path(path).read_text())
    specs = tuple(_spec(e) for e in data["models"])
    ids = [s.id for s in specs]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate model ids in registry")
    return ModelRegistry(specs)

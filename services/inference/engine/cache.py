"""Per-device model cache: pipelines stay loaded between jobs, least recently used evicted first
when the memory budget would be exceeded."""

from __future__ import annotations

import gc
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.inference.engine.policy import MemoryPolicy, apply_policy, is_oom, torch_dtype
from services.inference.models.registry import ModelSpec, Task
from services.kit.errors import ServiceError

__all__ = ["LoadedPipeline", "ModelCache", "pipeline_bytes"]


@dataclass
class LoadedPipeline:
    key: tuple[str, str, str]
    spec: ModelSpec
    task: Task
    pipe: Any
    policy: MemoryPolicy
    nbytes: int
    scheduler_config: Any
    # Text embeddings by prompt (engine/diffusion.py ``text_embeddings``): evicted with the pipeline.
    prompt_embeds: OrderedDict[str, Any] = field(default_factory=OrderedDict)


def pipeline_bytes(pipe: Any) -> int:
    import torch

    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in component.parameters())
            total += sum(b.numel() * b.element_size() for b in component.buffers())
    return total


class ModelCache:
    def __init__(self, models_dir: Path, device: str, budget_bytes: int, *, allow_download: bool = False,
                 build_tiny: bool = True) -> None:
        self.models_dir = models_dir
        self.device = device
        self.budget_bytes = budget_bytes
        self.allow_download = allow_download
        self.build_tiny = build_tiny
        self._entries: OrderedDict[tuple[str, str, str], LoadedPipeline] = OrderedDict()
        # Pipelines loaded from disk so far (tests assert that switching LoRAs loads none).
        self.loads = 0

    def loaded_ids(self) -> set[str]:
        return {entry.spec.id for entry in self._entries.values()}

    def used_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def contains(self, spec: ModelSpec, task: Task, policy: MemoryPolicy) -> bool:
        return self._key(spec, task, policy) in self._entries

    def _key(self, spec: ModelSpec, task: Task, policy: MemoryPolicy) -> tuple[str, str, str]:
        return (spec.id, spec.pipeline_class(task), policy.label)

    def get(self, spec: ModelSpec, task: Task, policy: MemoryPolicy) -> LoadedPipeline:
        key = self._key(spec, task, policy)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        # Another policy of the same pipeline is the same weights: drop it before loading again.
        for other in [k for k in self._entries if k[:2] == key[:2]]:
            self.evict(other)
        pipe = self._load(spec, task, policy)
        self.loads += 1
        nbytes = pipeline_bytes(pipe)
        self._make_room(nbytes)
        entry = LoadedPipeline(key, spec, task, pipe, policy, nbytes, dict(pipe.scheduler.config))
        self._entries[key] = entry
        return entry

    def _load(self, spec: ModelSpec, task: Task, policy: MemoryPolicy) -> Any:
        import diffusers


        source = spec.resolve_path(self.models_dir)
        if spec.tiny and not Path(source).exists():
            if not self.build_tiny:
                raise ServiceError.failed_precondition(
                    "MODEL_UNAVAILABLE", f"{spec.id} is not built in {self.models_dir} (build_tiny_models is off)")
            from services.inference.models.tiny import build_tiny_model

            build_tiny_model(spec, self.models_dir)
        cls = getattr(diffusers, spec.pipeline_class(task))
        kwargs: dict[str, Any] = {"torch_dtype": torch_dtype(policy.dtype)}
        if spec.variant and not Path(source).exists():
            kwargs["variant"] = spec.variant
        if not Path(source).exists():
            kwargs["local_files_only"] = not self.allow_download
        try:
            pipe = cls.from_pretrained(source, **kwargs)
        except Exception as exc:
            if is_oom(exc):
                raise
            # Weights missing or incomplete: say so instead of an opaque INTERNAL.
            raise ServiceError.failed_precondition(
                "MODEL_UNAVAILABLE", f"the weights of {spec.id} are not available here ({type(exc).__name__})",
                metadata={"model": spec.id, "source": source},
            ) from exc
        pipe.set_progress_bar_config(disable=True)
        apply_policy(pipe, policy, self.device)
        return pipe

    def _make_room(self, incoming: int) -> None:
        while self._entries and self.used_bytes() + incoming > self.budget_bytes:
            self.evict(next(iter(self._entries)))

    def evict(self, key: tuple[str, str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        del entry
        release_memory()

    def clear(self) -> None:
        for key in list(self._entries):
            self.evict(key)


def release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

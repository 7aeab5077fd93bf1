"""Generation and face swap jobs (``viarte.inference.v1``), and the keyword builders of their
parameters, so that scripts need no proto imports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from viarte.client._base import sync
from viarte.client.jobs import AsyncJobs, Jobs, _JobSpec
from viarte.errors import ClientError
from viarte.inference.v1 import face_swap_pb2, face_swap_pb2_grpc, generation_pb2, generation_pb2_grpc

__all__ = ["AsyncGeneration", "Generation", "face_swap_options", "generation_parameters"]

GENERATION = _JobSpec("generation", "inference", generation_pb2_grpc.GenerationServiceStub, generation_pb2, "Generation")
FACE_SWAP = _JobSpec("face_swap", "inference", face_swap_pb2_grpc.FaceSwapServiceStub, face_swap_pb2, "FaceSwap")

_TASKS = {"t2v": generation_pb2.TASK_TEXT_TO_VIDEO, "i2v": generation_pb2.TASK_IMAGE_TO_VIDEO}
_SELECTORS = {
    "all": face_swap_pb2.FACE_SELECTOR_MODE_ALL,
    "index": face_swap_pb2.FACE_SELECTOR_MODE_INDEX,
    "reference": face_swap_pb2.FACE_SELECTOR_MODE_REFERENCE,
}


def face_swap_options(
    source_face_asset_id: str,
    *,
    selector: Literal["all", "index", "reference"] = "all",
    face_index: int = 0,
    reference_face_asset_id: str = "",
    similarity_threshold: float = 0.0,
) -> face_swap_pb2.FaceSwapOptions:
    if selector not in _SELECTORS:
        raise ClientError(f"selector must be one of {sorted(_SELECTORS)}")
    return face_swap_pb2.FaceSwapOptions(
        source_face_asset_id=source_face_asset_id,
        selector=_SELECTORS[selector],
        face_index=face_index,
        reference_face_asset_id=reference_face_asset_id,
        similarity_threshold=similarity_threshold,
    )


def generation_parameters(
    *,
    model: str,
    prompt: str = "",
    task: Literal["t2v", "i2v"] | None = None,
    negative_prompt: str = "",
    image_asset_id: str = "",
    width: int = 0,
    height: int = 0,
    num_frames: int = 0,
    fps: int = 0,
    num_inference_steps: int = 0,
    guidance_scale: float | None = None,
    seed: int | None = None,
    preview_every_n_steps: int = 0,
    face_swap: face_swap_pb2.FaceSwapOptions | None = None,
    svd: Mapping[str, Any] | None = None,
    wan: Mapping[str, Any] | None = None,
    loras: Mapping[str, float] | None = None,
    devices: int = 0,
) -> generation_pb2.GenerationParameters:
    """``GenerationParameters`` from keywords; ``task`` defaults to i2v when an image is given;
    ``loras`` maps trained LoRA ids (``client.training.list_loras()``) to weights; ``devices=2``
    splits one job over two GPUs (CFG-parallel; the Ray executor, Wan models, guidance > 1)."""
    chosen = task or ("i2v" if image_asset_id else "t2v")
    if chosen not in _TASKS:
        raise ClientError(f"task must be 't2v' or 'i2v', not {chosen!r}")
    params = generation_pb2.GenerationParameters(
        model=model,
        task=_TASKS[chosen],
        prompt=prompt,
        negative_prompt=negative_prompt,
        image_asset_id=image_asset_id,
        width=width,
        height=height,
        num_frames=num_frames,
        fps=fps,
        num_inference_steps=num_inference_steps,
        preview_every_n_steps=preview_every_n_steps,
        devices=devices,
    )
    if guidance_scale is not None:
        params.guidance_scale = guidance_scale
    if seed is not None:
        params.seed = seed
    if face_swap is not None:
        params.face_swap.CopyFrom(face_swap)
    if svd is not None:
        params.svd.CopyFrom(generation_pb2.SvdParameters(**svd))
    if wan is not None:
        params.wan.CopyFrom(generation_pb2.WanParameters(**wan))
    for lora_id, weight in (loras or {}).items():
        params.loras.add(lora_id=lora_id, weight=weight)
    return params


class AsyncGeneration(AsyncJobs[generation_pb2.GenerationJob, generation_pb2.GenerationParameters]):
    """Text/image-to-video generation jobs (``viarte.inference.v1.GenerationService``)."""

    async def list_models(self) -> list[generation_pb2.Model]:
        stub = self._t.stub(generation_pb2_grpc.GenerationServiceStub, "inference")
        return list((await self._t.unary(stub.ListModels, generation_pb2.ListModelsRequest(), retry=True)).models)


class Generation(Jobs[generation_pb2.GenerationJob, generation_pb2.GenerationParameters]):
    """The sync :class:`AsyncGeneration`."""

    list_models = sync(AsyncGeneration.list_models)

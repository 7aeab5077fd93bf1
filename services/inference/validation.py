"""check_inputs for generation requests, diffusers style: every field checked against the model's
limits, all violations reported at once (BadRequest), defaults applied and the seed drawn, so the
stored parameters fully determine the output."""

from __future__ import annotations

import secrets

from services.inference.models.registry import Family, ModelRegistry, ModelSpec, Task
from services.inference.reasons import Reason
from services.kit.errors import FieldViolation, ServiceError, Violations
from viarte.inference.v1 import generation_pb2 as gen_pb2

__all__ = ["MAX_DEVICES", "MAX_REQUEST_ID", "check_generation", "check_parameters"]

MAX_REQUEST_ID = 128
MAX_SEED = 2**63 - 1
# One job over several devices: CFG-parallel splits one step into two passes (issue 15).
MAX_DEVICES = 2
P = "parameters"


def _model_and_task(params: gen_pb2.GenerationParameters, registry: ModelRegistry) -> tuple[ModelSpec, Task]:
    if not params.model:
        raise ServiceError.invalid_argument(Reason.MODEL_NOT_FOUND, "parameters.model is required",
                                            violations=(FieldViolation(f"{P}.model", "required"),))
    spec = registry.get(params.model)
    if spec is None:
        raise ServiceError.invalid_argument(
            Reason.MODEL_NOT_FOUND, f"unknown model {params.model!r}",
            violations=(FieldViolation(f"{P}.model", f"unknown model; one of {[m.id for m in registry]}"),),
        )
    if params.task == gen_pb2.TASK_UNSPECIFIED:
        wanted = Task.IMAGE_TO_VIDEO if params.image_asset_id else Task.TEXT_TO_VIDEO
        task = wanted if wanted in spec.tasks else spec.tasks[0]
    else:
        maybe = Task.from_proto(params.task)
        if maybe is None or maybe not in spec.tasks:
            raise ServiceError.invalid_argument(
                Reason.TASK_NOT_SUPPORTED, f"{spec.id} does not do {gen_pb2.Task.Name(params.task)}",
                violations=(FieldViolation(f"{P}.task", f"{spec.id} supports {[t.value for t in spec.tasks]}"),),
            )
        task = maybe
    return spec, task


def check_parameters(params: gen_pb2.GenerationParameters, registry: ModelRegistry) -> None:
    """Validation only (the assistant uses it to vet proposals)."""
    check_generation(params, registry)


def check_generation(
    params: gen_pb2.GenerationParameters, registry: ModelRegistry, *, face_swap_available: bool = True
) -> tuple[ModelSpec, gen_pb2.GenerationParameters]:
    """Validates ``params`` and returns the model and a resolved copy (defaults, task, seed)."""
    spec, task = _model_and_task(params, registry)
    lim = spec.limits
    v = Violations()
    out = gen_pb2.GenerationParameters()
    out.CopyFrom(params)
    out.task = task.proto  # type: ignore[assignment]

    # Prompt: required for text-conditioned families; SVD has no text encoder.
    if spec.family is not Family.SVD:
        v.check(bool(params.prompt.strip()) or task is Task.IMAGE_TO_VIDEO, f"{P}.prompt", "required")
        v.check(len(params.prompt) <= lim.max_prompt_chars, f"{P}.prompt", f"at most {lim.max_prompt_chars} characters")
        v.check(len(params.negative_prompt) <= lim.max_prompt_chars, f"{P}.negative_prompt",
                f"at most {lim.max_prompt_chars} characters")
    else:
        v.check(not params.prompt and not params.negative_prompt, f"{P}.prompt",
                f"{spec.id} is image-conditioned only; leave the prompt empty")
    image_missing = task is Task.IMAGE_TO_VIDEO and not params.image_asset_id
    if task is Task.TEXT_TO_VIDEO:
        v.check(not params.image_asset_id, f"{P}.image_asset_id", "only for image_to_video")

    for name, value, lo, hi, default in (
        ("width", params.width, lim.min_width, lim.max_width, lim.default_width),
        ("height", params.height, lim.min_height, lim.max_height, lim.default_height),
    ):
        size = value or default
        if v.check(lo <= size <= hi, f"{P}.{name}", f"must be within [{lo}, {hi}]"):
            v.check(size % lim.size_multiple == 0, f"{P}.{name}", f"must be a multiple of {lim.size_multiple}")
        setattr(out, name, size)
    frames = params.num_frames or lim.default_frames
    if v.check(lim.min_frames <= frames <= lim.max_frames, f"{P}.num_frames",
               f"must be within [{lim.min_frames}, {lim.max_frames}]") and lim.frames_multiple > 1 and frames > 1:
        v.check((frames - 1) % lim.frames_multiple == 0, f"{P}.num_frames",
                f"(num_frames - 1) must be a multiple of {lim.frames_multiple}")
    out.num_frames = frames
    out.fps = params.fps or lim.default_fps
    v.check(1 <= out.fps <= 60, f"{P}.fps", "must be within [1, 60]")
    out.num_inference_steps = params.num_inference_steps or lim.default_steps
    v.check(1 <= out.num_inference_steps <= lim.max_steps, f"{P}.num_inference_steps",
            f"must be within [1, {lim.max_steps}]")
    guidance = params.guidance_scale if params.HasField("guidance_scale") else lim.default_guidance_scale
    v.check(0.0 <= guidance <= lim.max_guidance_scale, f"{P}.guidance_scale",
            f"must be within [0, {lim.max_guidance_scale}]")
    out.guidance_scale = guidance
    if params.HasField("seed"):
        v.check(0 <= params.seed <= MAX_SEED, f"{P}.seed", "must not be negative")
    else:
        out.seed = secrets.randbelow(2**32)  # drawn once, stored: retries reproduce the same video
    v.check(0 <= params.preview_every_n_steps <= out.num_inference_steps, f"{P}.preview_every_n_steps",
            "must be within [0, num_inference_steps]")
    _check_family(params, spec, frames, v)
    _check_devices(params, spec, guidance, v)
    if params.HasField("face_swap"):
        _check_face_swap(params.face_swap, v, face_swap_available)

    if image_missing:
        if not v:
            raise ServiceError.invalid_argument(
                Reason.IMAGE_REQUIRED, "image_to_video needs parameters.image_asset_id",
                violations=(FieldViolation(f"{P}.image_asset_id", "required for image_to_video"),),
            )
        v.add(f"{P}.image_asset_id", "required for image_to_video")
    v.raise_if_any(Reason.INVALID_PARAMETERS, "invalid generation parameters")
    return spec, out


def _check_family(params: gen_pb2.GenerationParameters, spec: ModelSpec, frames: int, v: Violations) -> None:
    which = params.WhichOneof("family_parameters")
    if which == "svd":
        if not v.check(spec.family is Family.SVD, f"{P}.svd", f"only for SVD models, not {spec.family.value}"):
            return
        svd = params.svd
        if svd.HasField("motion_bucket_id"):
            v.check(1 <= svd.motion_bucket_id <= 255, f"{P}.svd.motion_bucket_id", "must be within [1, 255]")
        if svd.HasField("noise_aug_strength"):
            v.check(0.0 <= svd.noise_aug_strength <= 1.0, f"{P}.svd.noise_aug_strength", "must be within [0, 1]")
        for name in ("min_guidance_scale", "max_guidance_scale"):
            if svd.HasField(name):
                v.check(0.0 <= getattr(svd, name) <= spec.limits.max_guidance_scale, f"{P}.svd.{name}",
                        f"must be within [0, {spec.limits.max_guidance_scale}]")
        v.check(0 <= svd.decode_chunk_size <= frames, f"{P}.svd.decode_chunk_size", "must be within [0, num_frames]")
    elif which == "wan":
        if not v.check(spec.family is Family.WAN, f"{P}.wan", f"only for Wan models, not {spec.family.value}"):
            return
        if params.wan.HasField("flow_shift"):
            v.check(0.0 < params.wan.flow_shift <= 20.0, f"{P}.wan.flow_shift", "must be within (0, 20]")
        if params.wan.HasField("guidance_scale_2"):
            v.check(0.0 <= params.wan.guidance_scale_2 <= spec.limits.max_guidance_scale, f"{P}.wan.guidance_scale_2",
                    f"must be within [0, {spec.limits.max_guidance_scale}]")


def _check_devices(params: gen_pb2.GenerationParameters, spec: ModelSpec, guidance: float, v: Violations) -> None:
    """``devices: 2`` splits classifier-free guidance (two denoiser passes per step) over two devices:
    a Wan model (its pipeline runs the passes separately) with guidance on (> 1, else one pass)."""
    if not v.check(0 <= params.devices <= MAX_DEVICES, f"{P}.devices",
                   f"must be within [0, {MAX_DEVICES}] (2: the conditional and unconditional passes on two devices)"):
        return
    if params.devices == 2:
        v.check(spec.family is Family.WAN, f"{P}.devices", f"2 devices need a Wan model, not {spec.family.value}")
        v.check(guidance > 1.0, f"{P}.devices", "2 devices need guidance_scale > 1 (no unconditional pass to split)")


def _check_face_swap(options: object, v: Violations, available: bool) -> None:
    if not v.check(available, f"{P}.face_swap", "face swap is not available on this deployment"):
        return
    try:
        from services.inference.faceswap.servicer import check_face_swap_options
    except ImportError:
        v.add(f"{P}.face_swap", "face swap is not available on this deployment")
        return
    check_face_swap_options(options, v, f"{P}.face_swap")  # type: ignore[arg-type]

"""Training requests checked before anything is queued: parameters against the model's limits
(defaults applied, seed drawn, so the stored parameters fully determine the run) and the dataset
against storage (every asset the caller's image or video, within the model's frame limit). All
violations are reported at once as BadRequest field paths."""

from __future__ import annotations

import secrets

from services.inference.models.registry import Family, ModelRegistry, ModelSpec
from services.inference.reasons import Reason
from services.inference.training.captions import resolve_captions
from services.kit.errors import FieldViolation, ServiceError, Violations
from services.kit.storage_client import StorageClient
from viarte.storage.v1 import storage_pb2
from viarte.training.v1 import training_pb2 as T
from viarte.type.v1 import asset_pb2

__all__ = ["LORA_FAMILIES", "MAX_EXAMPLES", "check_dataset", "check_training", "lora_model"]

# Families whose diffusers pipelines load LoRAs and whose transformer the trainer knows.
LORA_FAMILIES = frozenset({Family.WAN})
MAX_EXAMPLES = 1000
MAX_STEPS = 100_000
MAX_RANK = 256
MAX_CAPTION = 2000
P = "parameters"
D = f"{P}.dataset.examples"


def lora_model(model_id: str, registry: ModelRegistry, field: str) -> ModelSpec:
    """The registry model, of a family with LoRA support (else FAILED_PRECONDITION LORA_UNSUPPORTED)."""
    spec = registry.get(model_id)
    if spec is None:
        raise ServiceError.invalid_argument(
            Reason.MODEL_NOT_FOUND, f"unknown model {model_id!r}",
            violations=(FieldViolation(field, f"unknown model; one of {[m.id for m in registry]}"),),
        )
    if spec.family not in LORA_FAMILIES:
        raise ServiceError.failed_precondition(
            Reason.LORA_UNSUPPORTED, f"{spec.id} ({spec.family.value}) has no LoRA support",
            metadata={"model": spec.id, "family": spec.family.value},
        )
    return spec


def check_training(params: T.TrainingParameters, registry: ModelRegistry) -> tuple[ModelSpec, T.TrainingParameters]:
    """Field checks; returns the model and a resolved copy (defaults applied, seed drawn)."""
    spec = lora_model(params.base_model, registry, f"{P}.base_model")
    lim = spec.limits
    out = T.TrainingParameters()
    out.CopyFrom(params)
    out.rank = params.rank or 16
    out.alpha = params.alpha or float(out.rank)
    out.learning_rate = params.learning_rate or 1e-4
    out.steps = params.steps or 500
    out.batch_size = params.batch_size or 1
    out.width = params.width or lim.default_width
    out.height = params.height or lim.default_height
    out.num_frames = params.num_frames or 1
    if not params.HasField("seed"):
        out.seed = secrets.randbelow(2**31)
    v = Violations()
    v.check(1 <= out.rank <= MAX_RANK, f"{P}.rank", f"must be in [1, {MAX_RANK}]")
    v.check(0 < out.alpha <= 4 * MAX_RANK, f"{P}.alpha", "must be positive")
    v.check(0 < out.learning_rate <= 1.0, f"{P}.learning_rate", "must be in (0, 1]")
    v.check(1 <= out.steps <= MAX_STEPS, f"{P}.steps", f"must be in [1, {MAX_STEPS}]")
    v.check(1 <= out.batch_size <= 64, f"{P}.batch_size", "must be in [1, 64]")
    for name, lo, hi in (("width", lim.min_width, lim.max_width), ("height", lim.min_height, lim.max_height)):
        value = getattr(out, name)
        if v.check(lo <= value <= hi, f"{P}.{name}", f"must be in [{lo}, {hi}] for {spec.id}"):
            v.check(value % lim.size_multiple == 0, f"{P}.{name}", f"must be a multiple of {lim.size_multiple}")
    if v.check(lim.min_frames <= out.num_frames <= lim.max_frames, f"{P}.num_frames",
               f"must be in [{lim.min_frames}, {lim.max_frames}] for {spec.id}"):
        v.check(out.num_frames == 1 or (out.num_frames - 1) % lim.frames_multiple == 0, f"{P}.num_frames",
                f"(num_frames - 1) must be a multiple of {lim.frames_multiple}")
    v.check(out.seed >= 0, f"{P}.seed", "must not be negative")
    _check_samples(out, spec, v)
    # Against steps only when steps itself is valid: one bad field, one violation.
    v.check(0 <= out.checkpoint_every_n_steps <= max(out.steps, MAX_STEPS if out.steps < 1 else 0),
            f"{P}.checkpoint_every_n_steps", "must be in [0, steps]")
    v.check(len(out.trigger_word) <= 100, f"{P}.trigger_word", "at most 100 characters")
    v.check(len(out.validation_prompt) <= lim.max_prompt_chars, f"{P}.validation_prompt", "too long")
    v.check(len(out.name) <= 200, f"{P}.name", "at most 200 characters")
    v.raise_if_any(Reason.INVALID_PARAMETERS, "invalid training parameters")
    return spec, out


def _check_samples(out: T.TrainingParameters, spec: ModelSpec, v: Violations) -> None:
    """Sample clips: a prompt, and a clip the model can render (defaults: the model's steps;
    num_frames when training on clips, else a 9-frame clip)."""
    lim = spec.limits
    if not out.sample_every_n_steps:
        return
    out.sample_num_inference_steps = out.sample_num_inference_steps or lim.default_steps
    out.sample_num_frames = out.sample_num_frames or (
        out.num_frames if out.num_frames > 1 else min(1 + 2 * lim.frames_multiple, lim.max_frames))
    v.check(out.sample_every_n_steps > 0, f"{P}.sample_every_n_steps", "must not be negative")
    v.check(bool(out.validation_prompt.strip()), f"{P}.validation_prompt", "required when sample_every_n_steps is set")
    v.check(1 <= out.sample_num_inference_steps <= lim.max_steps, f"{P}.sample_num_inference_steps",
            f"must be in [1, {lim.max_steps}] for {spec.id}")
    n = out.sample_num_frames
    v.check(lim.min_frames <= n <= lim.max_frames and (n == 1 or (n - 1) % lim.frames_multiple == 0),
            f"{P}.sample_num_frames", f"must be in [{lim.min_frames}, {lim.max_frames}] with (n - 1) a multiple of "
            f"{lim.frames_multiple}")


async def check_dataset(store: StorageClient, owner: str, params: T.TrainingParameters,
                        spec: ModelSpec) -> list[storage_pb2.Asset] | None:
    """Every example is an image or video of `owner`, captioned (or a trigger word is set), a video
    holds at least `num_frames` frames and at most the model's frame limit. Sidecar captions and a
    caption file are resolved into `params` first (captions.py). Raises INVALID_ARGUMENT
    INVALID_DATASET with every violation. Returns the assets, in order."""
    examples = params.dataset.examples
    v = Violations()
    v.check(len(examples) > 0 or bool(params.dataset.caption_file_asset_id), D,
            "at least one image or video (or a caption file) is required")
    v.check(len(examples) <= MAX_EXAMPLES, D, f"at most {MAX_EXAMPLES} examples")
    v.raise_if_any(Reason.INVALID_DATASET, "the dataset is empty" if not examples else None)
    # Sidecar captions and the caption file become plain examples of the stored parameters.
    prefixes = await resolve_captions(store, owner, params, MAX_EXAMPLES)
    assets: list[storage_pb2.Asset] = []
    for field, example in zip(prefixes, examples, strict=True):
        v.check(bool(example.caption.strip()) or bool(params.trigger_word.strip()), f"{field}.caption",
                "required when no trigger_word is set")
        v.check(len(example.caption) <= MAX_CAPTION, f"{field}.caption", f"at most {MAX_CAPTION} characters")
        if not v.check(bool(example.asset_id), f"{field}.asset_id", "required"):
            continue
        try:
            asset = (await store.resolve(owner, example.asset_id)).asset
        except ServiceError as err:
            if err.reason != Reason.ASSET_NOT_FOUND:
                raise  # storage down: UNAVAILABLE, not the caller's fault
            v.add(f"{field}.asset_id", "no such asset of yours")
            continue
        assets.append(asset)
        if asset.kind == asset_pb2.ASSET_KIND_VIDEO:
            frames = asset.media.frame_count
            v.check(frames <= spec.limits.max_frames, f"{field}.asset_id",
                    f"the video has {frames} frames; {spec.id} trains on at most {spec.limits.max_frames}")
            v.check(frames >= params.num_frames, f"{field}.asset_id",
                    f"the video has {frames} frames, fewer than num_frames={params.num_frames}")
        elif asset.kind != asset_pb2.ASSET_KIND_IMAGE:
            v.add(f"{field}.asset_id", f"must be an image or a video, not {asset.content_type}")
    v.raise_if_any(Reason.INVALID_DATASET)
    return assets

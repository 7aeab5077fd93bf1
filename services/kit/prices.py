"""The price list: one deterministic function per job kind, rates from the service config.

Pure and shared (issue 16): account charges finished jobs with it, and the job services estimate
a job's credits at create with it (``JobStatus.cost.estimated_credits``). The rates are fields of
every ``ServiceConfig`` (``VIARTE_GENERATION_CREDITS_PER_MEGAPIXEL_FRAME_STEP`` etc., read by every
service through the unprefixed fallback), so one setting prices estimates and charges alike.

Credits are whole numbers; every function rounds its exact (decimal) product up, so the same
quantities always cost the same credits on every replica and a job that did any work costs at
least one credit. Rates are read as decimals of their written form (0.05 is exactly 5/100).

    generation  ceil(rate(model) * width * height / 1e6 * frames * steps)
    face swap   ceil(face_swap_credits_per_frame * frames)   frames swapped
    upscale     ceil(upscale_credits_per_frame * frames)     output frames
    render      ceil(render_credits_per_second * video_seconds)  output seconds
    training    ceil(rate * width * height / 1e6 * frames * steps)  frames = num_frames * batch_size
                (what one optimizer step trains on), steps = optimizer steps;
                rate = training_credits_per_megapixel_frame_step (a training step is a forward
                and a backward pass: about 3x a denoising step's work, hence 0.15 vs 0.05)

The outcome rule (``charge``): SUCCEEDED pays the price of its quantities; CANCELLED pays the price
of the work done before the cancel (the job service reports those quantities); FAILED is refunded
(0 credits), since a failure is not reliably the caller's fault.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from services.kit.config import ServiceConfig
from viarte.account.v1 import account_pb2
from viarte.type.v1 import job_pb2

__all__ = ["KIND_NAMES", "MAX_CREDITS", "Price", "PriceList", "Usage"]

KIND_NAMES: Mapping[int, str] = MappingProxyType({
    account_pb2.JOB_KIND_GENERATION: "generation",
    account_pb2.JOB_KIND_FACE_SWAP: "face_swap",
    account_pb2.JOB_KIND_UPSCALE: "upscale",
    account_pb2.JOB_KIND_RENDER: "render",
    account_pb2.JOB_KIND_TRAINING: "training",
})
_MEGA = Decimal(1_000_000)
# Credits are int64 on the wire and in the database.
MAX_CREDITS = 2**63 - 1


@dataclass(frozen=True)
class Usage:
    """The measured quantities of one job (``account_pb2.Quantities`` as plain values)."""

    width: int = 0
    height: int = 0
    frames: int = 0
    steps: int = 0
    video_seconds: float = 0.0
    gpu_seconds: float = 0.0

    @classmethod
    def from_proto(cls, q: account_pb2.Quantities) -> Usage:
        return cls(q.width, q.height, q.frames, q.steps, q.video_seconds, q.gpu_seconds)

    def to_proto(self) -> account_pb2.Quantities:
        return account_pb2.Quantities(
            width=self.width, height=self.height, frames=self.frames, steps=self.steps,
            video_seconds=self.video_seconds, gpu_seconds=self.gpu_seconds,
        )  # fmt: skip

    def invalid_fields(self) -> list[str]:
        """Fields that no job measures: negative, or not a finite number."""
        return [name for name in ("width", "height", "frames", "steps", "video_seconds", "gpu_seconds")
                if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0]  # fmt: skip


@dataclass(frozen=True)
class Price:
    credits: int
    formula: str


def _dec(value: float | str) -> Decimal:
    # str() gives the shortest decimal that round-trips the float: the rate as it was written.
    return Decimal(str(value))


def _ceil(value: Decimal) -> int:
    return math.ceil(value)


@dataclass(frozen=True)
class PriceList:
    generation_rate: Decimal
    face_swap_rate: Decimal
    upscale_rate: Decimal
    render_rate: Decimal
    training_rate: Decimal = Decimal("0.15")
    model_rates: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: ServiceConfig) -> PriceList:
        models: dict[str, Decimal] = {}
        for entry in config.generation_model_rates:
            model, sep, rate = entry.partition("=")
            if not sep or not model.strip():
                raise ValueError(f"generation_model_rates entry must be 'model=rate', got {entry!r}")
            models[model.strip()] = _dec(rate.strip())
        return cls(
            generation_rate=_dec(config.generation_credits_per_megapixel_frame_step),
            face_swap_rate=_dec(config.face_swap_credits_per_frame),
            upscale_rate=_dec(config.upscale_credits_per_frame),
            render_rate=_dec(config.render_credits_per_second),
            training_rate=_dec(config.training_credits_per_megapixel_frame_step),
            model_rates=MappingProxyType(models),
        )

    def rate(self, model: str) -> Decimal:
        return self.model_rates.get(model, self.generation_rate)

    def price(self, kind: int, model: str, usage: Usage) -> Price:
        """The price of ``usage`` for a job of ``kind`` (a ``JobKind`` number)."""
        if kind == account_pb2.JOB_KIND_GENERATION:
            rate = self.rate(model)
            megapixels = Decimal(usage.width) * Decimal(usage.height) / _MEGA
            credits = _ceil(rate * megapixels * usage.frames * usage.steps)
            formula = f"ceil({rate} * {megapixels} MP * {usage.frames} frames * {usage.steps} steps)"
        elif kind == account_pb2.JOB_KIND_FACE_SWAP:
            credits = _ceil(self.face_swap_rate * usage.frames)
            formula = f"ceil({self.face_swap_rate} * {usage.frames} frames)"
        elif kind == account_pb2.JOB_KIND_UPSCALE:
            credits = _ceil(self.upscale_rate * usage.frames)
            formula = f"ceil({self.upscale_rate} * {usage.frames} output frames)"
        elif kind == account_pb2.JOB_KIND_TRAINING:
            megapixels = Decimal(usage.width) * Decimal(usage.height) / _MEGA
            credits = _ceil(self.training_rate * megapixels * usage.frames * usage.steps)
            formula = (f"ceil({self.training_rate} * {megapixels} MP * {usage.frames} frames/step"
                       f" * {usage.steps} steps)")
        elif kind == account_pb2.JOB_KIND_RENDER:
            seconds = _dec(usage.video_seconds)
            credits = _ceil(self.render_rate * seconds)
            formula = f"ceil({self.render_rate} * {seconds} output seconds)"
        else:
            raise ValueError(f"unknown job kind {kind}")
        return Price(credits, formula)

    def charge(self, kind: int, model: str, state: int, usage: Usage) -> int:
        """The credits a finished job is charged (the outcome rule in the module docstring)."""
        if state == job_pb2.JOB_STATE_FAILED:
            return 0
        return self.price(kind, model, usage).credits

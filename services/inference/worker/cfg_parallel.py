"""One generation over two devices (issue 15, ``devices: 2``): CFG-parallel denoising.

Classifier-free guidance runs the denoiser twice per step on the same latents, once conditioned on
the prompt and once on the negative prompt, then mixes ``uncond + g * (cond - uncond)``. The two
passes are independent, so the unconditional one runs on a second device at the same time:

- the leader runs the pipeline unchanged (scheduler, guidance mix, callbacks, previews, decode);
  ``split_guidance`` patches its transformer(s) for the run: the conditional call first sends the
  same inputs (latents, timestep; the negative embeddings once) to the partner, computes its own
  pass meanwhile, and the pipeline's next, unconditional call is answered with the partner's result
  instead of being computed;
- the partner (``PartnerState`` + ``unconditional``) holds the same model (loaded from the same
  files, the same LoRAs) and computes exactly the call the leader would have made.

Tolerance: the partner runs the same operations on the same inputs and weights, so on CPU (same
torch build and thread count) the output is bit-identical to the one-device run; the test checks
equality of every decoded frame. On two identical GPUs the kernels are the same and so is the
result; on mixed GPU models bf16 kernels may differ in the last bits of a pass (the same order of
difference as between two runs on those GPUs), which is the stated bound there.

Only for pipelines that call the transformer once per pass with ``encoder_hidden_states`` (Wan);
validation refuses other families. Runs inside a device actor; imports torch lazily.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Partner", "PartnerLost", "PartnerState", "split_guidance", "unconditional"]

# A partner that never becomes ready (its load failed silently, its node is gone) fails the leader.
READY_TIMEOUT_S = 900.0


class PartnerLost(RuntimeError):
    """The partner could not answer a pass (it died, or failed): the attempt is retried."""


class Partner(Protocol):
    def submit(self, which: str, hidden_states: Any, timestep: Any, attention_kwargs: Any, negative: Any) -> Any:
        """Starts the unconditional pass on the partner; returns a handle for ``result``."""

    def result(self, handle: Any) -> Any:
        """The pass's noise prediction (a CPU tensor); raises when the partner is gone."""

    def finish(self) -> None:
        """Denoising is over: the partner may let its device go."""


@dataclass
class _Pending:
    handle: Any
    hidden_states: Any


@contextlib.contextmanager
def split_guidance(pipe: Any, partner: Partner, stats: dict[str, int]) -> Iterator[None]:
    """Runs the pipeline call inside with its unconditional passes on ``partner``; ``stats["remote"]``
    counts them. Restores the pipeline (a cached one, shared by later jobs) on the way out; the caller
    ends the partner (``finish``) once no pass is needed any more."""
    import torch

    captured: dict[str, Any] = {}
    original_encode = pipe.encode_prompt

    def encode_prompt(*args: Any, **kwargs: Any) -> Any:
        prompt_embeds, negative = original_encode(*args, **kwargs)
        captured["negative"] = negative
        return prompt_embeds, negative

    patched: list[Any] = []
    for which in ("transformer", "transformer_2"):
        model = getattr(pipe, which, None)
        if model is None:
            continue
        forward = model.forward
        pending: list[_Pending] = []
        sent = [False]

        def split_forward(*args: Any, _forward: Any = forward, _which: str = which, _pending: list[_Pending] = pending,
                          _sent: list[bool] = sent, **kwargs: Any) -> Any:
            context = kwargs.get("encoder_hidden_states")
            negative = captured.get("negative")
            if args or negative is None or context is None or kwargs.get("return_dict", True):
                return _forward(*args, **kwargs)  # not a guidance pass as Wan makes them: run it here
            is_uncond = context.shape == negative.shape and torch.equal(context, negative.to(context.dtype))
            hidden = kwargs["hidden_states"]
            if is_uncond and _pending:
                job = _pending.pop()
                if job.hidden_states is not hidden:  # not the pass the partner ran: compute it here
                    return _forward(*args, **kwargs)
                try:
                    noise = partner.result(job.handle)
                except Exception as exc:
                    raise PartnerLost(f"the partner device failed a pass: {type(exc).__name__}: {exc}"[:500]) from exc
                stats["remote"] = stats.get("remote", 0) + 1
                return (noise.to(hidden.device),)
            if is_uncond:
                return _forward(*args, **kwargs)
            _pending.clear()
            # The conditional pass: the partner starts the unconditional one, then this device works.
            ship = None
            if not _sent[0]:
                ship = negative.to(context.dtype).detach().cpu()
                _sent[0] = True
            timestep = kwargs["timestep"]
            handle = partner.submit(_which, hidden.detach().cpu(), timestep.detach().cpu(),
                                    kwargs.get("attention_kwargs"), ship)
            _pending.append(_Pending(handle, hidden))
            return _forward(*args, **kwargs)

        patched.append((model, "forward", model.__dict__.get("forward")))
        model.forward = split_forward
    patched.append((pipe, "encode_prompt", pipe.__dict__.get("encode_prompt")))
    pipe.encode_prompt = encode_prompt
    try:
        yield
    finally:
        # Back as it was: an instance attribute set before (an offload hook's forward) is put back,
        # else ours goes and the class's method shows again.
        for obj, name, before in reversed(patched):
            if before is None:
                delattr(obj, name)
            else:
                setattr(obj, name, before)


@dataclass
class PartnerState:
    """A partner task's side: the pipeline once loaded, the negative embeddings once sent."""

    ready: threading.Event = field(default_factory=threading.Event)
    pipe: Any = None
    device: str = "cpu"
    error: str = ""
    negative: Any = None
    passes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def unconditional(state: PartnerState, which: str, hidden_states: Any, timestep: Any, attention_kwargs: Any,
                  negative: Any) -> Any:
    """The unconditional pass the leader's pipeline would have made, on this device."""
    import torch

    if not state.ready.wait(READY_TIMEOUT_S):
        raise TimeoutError("the partner did not load its model in time")
    if state.error:
        raise RuntimeError(state.error)
    with state.lock:  # one pass at a time on this device
        if negative is not None:
            state.negative = negative.to(state.device)
        if state.negative is None:
            raise RuntimeError("the negative embeddings were never sent")
        model = getattr(state.pipe, which)
        with torch.no_grad():
            noise = model(hidden_states=hidden_states.to(state.device), timestep=timestep.to(state.device),
                          encoder_hidden_states=state.negative, attention_kwargs=attention_kwargs,
                          return_dict=False)[0]
        state.passes += 1
        return noise.detach().cpu()

"""CFG-parallel denoising (issue 15, ``devices: 2``) without Ray: the partner is a second pipeline,
loaded from the same tiny-wan files into its own cache, answering the leader's unconditional passes
from another thread (as an actor's ``uncond`` calls do). The split run's latents must equal the
one-device run's bit for bit, and every step's unconditional pass must have run on the partner."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from services.inference.engine.cache import ModelCache
from services.inference.engine.diffusion import denoise
from services.inference.engine.policy import choose_policy
from services.inference.models.registry import Task
from services.inference.worker.cfg_parallel import PartnerLost, PartnerState, unconditional
from services.inference.worker.protocol import GenerationSpec

GIB = 1024**3


class ThreadPartner:
    def __init__(self, state: PartnerState, fail_at: int = 0) -> None:
        self.state, self.fail_at, self.sent, self.finished = state, fail_at, 0, False
        self.pool = ThreadPoolExecutor(1)

    def submit(self, which: str, hidden_states: Any, timestep: Any, attention_kwargs: Any, negative: Any) -> Future[Any]:
        self.sent += 1
        if self.fail_at and self.sent == self.fail_at:
            failed: Future[Any] = Future()
            failed.set_exception(ConnectionError("the partner's node is gone"))
            return failed
        return self.pool.submit(unconditional, self.state, which, hidden_states, timestep, attention_kwargs, negative)

    def result(self, handle: Future[Any]) -> Any:
        return handle.result(timeout=300)

    def finish(self) -> None:
        self.finished = True


def _load(models_dir: Any, registry: Any) -> Any:
    cache = ModelCache(models_dir, "cpu", 2 * GIB)
    policy = choose_policy("default", "bf16", estimated_bytes=0, free_bytes=None)
    return cache.get(registry.get("tiny-wan"), Task.TEXT_TO_VIDEO, policy)


@pytest.fixture(scope="module")
def two_pipelines(tiny_models: Any) -> tuple[Any, Any]:
    return _load(tiny_models.models_dir, tiny_models.registry), _load(tiny_models.models_dir, tiny_models.registry)


def _spec(**kw: Any) -> GenerationSpec:
    values: dict[str, Any] = dict(model_id="tiny-wan", task=Task.TEXT_TO_VIDEO, prompt="a harbour at dusk",
                                  negative_prompt="blurry, dark", width=64, height=64, num_frames=9, fps=8, steps=4,
                                  guidance_scale=5.0, seed=21)
    values.update(kw)
    return GenerationSpec(**values)


def test_split_guidance_equals_the_one_device_latents(two_pipelines: tuple[Any, Any]) -> None:
    leader, other = two_pipelines
    assert leader.pipe is not other.pipe  # two loads: nothing shared but the files
    spec = _spec()
    one = denoise(leader, spec, image_png=None, on_step=lambda *a: None, should_stop=lambda: False)
    state = PartnerState(pipe=other.pipe)
    state.ready.set()
    partner = ThreadPartner(state)
    stats: dict[str, int] = {}
    steps: list[int] = []
    split = denoise(leader, spec, image_png=None, on_step=lambda s, n, lat: steps.append(s), should_stop=lambda: False,
                    partner=partner, stats=stats)
    assert steps == [1, 2, 3, 4]
    assert stats["remote"] == state.passes == partner.sent == 4  # each step's unconditional pass ran there
    assert split.shape == one.shape and split.dtype == one.dtype
    assert bool((split == one).all())  # bit-identical on CPU
    # The cached pipeline is back as it was: a later one-device run is the same again, nothing sent.
    again = denoise(leader, spec, image_png=None, on_step=lambda *a: None, should_stop=lambda: False)
    assert bool((again == one).all()) and partner.sent == 4
    assert "forward" not in vars(leader.pipe.transformer) and "encode_prompt" not in vars(leader.pipe)
    # A different negative prompt changes the output: the partner's pass is really the one used.
    other_negative = denoise(leader, _spec(negative_prompt="sharp"), image_png=None, on_step=lambda *a: None,
                             should_stop=lambda: False, partner=ThreadPartner(_ready(other.pipe)))
    assert not bool((other_negative == one).all())


def _ready(pipe: Any) -> PartnerState:
    state = PartnerState(pipe=pipe)
    state.ready.set()
    return state


def test_a_partner_lost_mid_step_fails_the_run_as_partner_lost(two_pipelines: tuple[Any, Any]) -> None:
    leader, other = two_pipelines
    partner = ThreadPartner(_ready(other.pipe), fail_at=2)
    with pytest.raises(PartnerLost, match="node is gone"):
        denoise(leader, _spec(), image_png=None, on_step=lambda *a: None, should_stop=lambda: False, partner=partner)
    assert "forward" not in vars(leader.pipe.transformer)  # restored on the way out of a failure too


def test_an_ended_partner_answers_at_once() -> None:
    state = PartnerState(error="the partner task has ended")
    state.ready.set()
    with pytest.raises(RuntimeError, match="ended"):
        unconditional(state, "transformer", None, None, None, None)

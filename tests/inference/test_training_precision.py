"""Issue 17, the overhead and precision increment: the worker's step events leave in batches (one
pipe write per batch, each event its own timestamp, nothing held past a final message or close),
and the training copy's precision (fp32 on CPU by default; bf16 frozen weights with fp32 LoRA
parameters, gradients and optimizer state when the config says so, or on a CUDA device with bf16).
No claim about speed here: bench/training_overhead.py measures it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from services.inference.worker.protocol import TaskDone, TaskEvent, TrainingExample, TrainingWork, WorkerSetup
from tests.inference.helpers import png


# -- event batching (worker/process.py _Sender) --------------------------------------------------
def _event(i: int) -> TaskEvent:
    return TaskEvent("t", b"", False, i)


def test_events_after_the_first_leave_together_and_a_final_message_takes_them_at_once() -> None:
    from services.inference.worker.process import _Sender

    ours, theirs = multiprocessing.Pipe()
    # A window no test run reaches: only the final message can release the held events.
    sender = _Sender(ours, batch_seconds=3600)
    try:
        for i in range(5):
            sender.send(_event(i))
        sender.send(TaskDone("t", None))
        first = theirs.recv()
        assert first == _event(0)  # the first after a quiet spell leaves at once, alone
        assert theirs.poll(60), "the final message did not flush the held events"
        assert theirs.recv() == [_event(i) for i in range(1, 5)] + [TaskDone("t", None)]
    finally:
        sender.close()


def test_close_sends_the_held_events() -> None:
    """The training worker's fault injection closes the sender before it exits: a checkpoint
    event held in a batch must still reach the server."""
    from services.inference.worker.process import _Sender

    ours, theirs = multiprocessing.Pipe()
    sender = _Sender(ours, batch_seconds=3600)
    for i in range(3):
        sender.send(_event(i))
    sender.close()
    received = [theirs.recv()]
    while theirs.poll(0.5):
        received.append(theirs.recv())
    flat = [m for r in received for m in (r if isinstance(r, list) else [r])]
    assert flat == [_event(i) for i in range(3)]


def test_without_a_window_every_event_leaves_on_its_own() -> None:
    from services.inference.worker.process import _Sender

    ours, theirs = multiprocessing.Pipe()
    sender = _Sender(ours, batch_seconds=0)
    for i in range(3):
        sender.send(_event(i))
    sender.close()
    assert [theirs.recv() for _ in range(3)] == [_event(i) for i in range(3)]


def test_event_batching_and_training_dtype_are_checked_config() -> None:
    from services.inference.config import InferenceConfig
    from services.kit.config import ConfigError, load_config

    config = load_config(InferenceConfig, {})
    assert (config.training_dtype, config.worker.training_dtype) == ("auto", "auto")
    assert 0 < config.worker.event_batch_seconds <= 0.1  # live charts stay live
    assert load_config(InferenceConfig, {"VIARTE_INFERENCE_TRAINING_DTYPE": "bf16"}).worker.training_dtype == "bf16"
    with pytest.raises(ConfigError, match="VIARTE_INFERENCE_TRAINING_DTYPE"):
        load_config(InferenceConfig, {"VIARTE_INFERENCE_TRAINING_DTYPE": "fp16"})
    with pytest.raises(ConfigError, match="VIARTE_INFERENCE_EVENT_BATCH_SECONDS"):
        load_config(InferenceConfig, {"VIARTE_INFERENCE_EVENT_BATCH_SECONDS": "-1"})


# -- the training copy's precision ----------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe(tiny_models: Any) -> Any:
    import torch
    from diffusers import WanPipeline

    from tests.fixtures.inference import TINY_MODELS_DIR

    return WanPipeline.from_pretrained(str(TINY_MODELS_DIR / "tiny-wan"), torch_dtype=torch.bfloat16)


def _trained(pipe: Any, weights_dtype: str, steps: int = 4) -> tuple[Any, list[float]]:
    from services.inference.training.trainer import LoraTrainer, decode_example

    trainer = LoraTrainer(pipe, rank=4, alpha=4.0, learning_rate=5e-3, seed=3, batch_size=1, device="cpu",
                          weights_dtype=weights_dtype)
    trainer.prepare([decode_example(TrainingExample(png(64, 64), "image/png", False, "x"), 64, 64, 1)],
                    ["a red square"])
    return trainer, [trainer.step(i)[0] for i in range(1, steps + 1)]


def test_bf16_copy_keeps_lora_params_grads_and_optimizer_state_in_fp32(pipe: Any, tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open

    warm = {n: p.dtype for n, p in pipe.transformer.named_parameters()}
    trainer, losses = _trained(pipe, "bf16")
    named = dict(trainer.transformer.named_parameters())
    frozen = {n: p.dtype for n, p in named.items() if not p.requires_grad}
    assert trainer.weights_dtype == "bf16"
    assert {d for n, d in frozen.items() if n.endswith("base_layer.weight")} == {torch.bfloat16}
    assert {d for n, d in frozen.items() if ".ffn." in n} == {torch.bfloat16}
    # What Wan keeps in fp32 (norms, time embedder) stays fp32, as from_pretrained(torch_dtype=bf16) does.
    # (scale_shift_table is a parameter, not a module: matched by name as from_pretrained does.)
    kept = {d for n, d in frozen.items() if "time_embedder" in n or ".norm2." in n or "scale_shift_table" in n.split(".")}
    assert kept == {torch.float32} and "scale_shift_table" in frozen
    assert {p.dtype for p in trainer.params} == {torch.float32} and len(trainer.params) > 0
    assert {p.grad.dtype for p in trainer.params if p.grad is not None} == {torch.float32}
    assert {v.dtype for s in trainer.optimizer.state.values() for v in s.values() if v.ndim} == {torch.float32}
    assert all(torch.isfinite(torch.tensor(losses)))
    # The warm pipeline that generation shares is untouched.
    assert {n: p.dtype for n, p in pipe.transformer.named_parameters()} == warm
    with safe_open(str(trainer.save_lora(tmp_path / "lora")), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_bf16_trains_what_fp32_trains(pipe: Any) -> None:
    """Same seed, same steps: bf16 frozen weights move the losses by rounding only (tolerance 2 %
    relative per step; measured ~1e-3 on tiny-wan), and fp32 stays the default."""
    import torch

    full, fp32 = _trained(pipe, "fp32")
    assert full.weights_dtype == "fp32" and {p.dtype for p in full.transformer.parameters()} == {torch.float32}
    _, bf16 = _trained(pipe, "bf16")
    assert bf16 == pytest.approx(fp32, rel=2e-2) and bf16 != fp32


def test_the_config_reaches_the_trainer_through_the_worker(pipe: Any, tmp_path: Path) -> None:
    """The worker's training function, in this process with a real model cache: "auto" on a CPU
    trains fp32, "bf16" in the config trains a bf16 copy, and the job's event says which."""
    from services.inference.training import worker as training_worker
    from services.inference.worker.config import WorkerConfig
    from services.inference.worker.context import TaskContext
    from tests.fixtures.inference import TINY_MODELS_DIR
    from viarte.type.v1 import job_pb2

    assert training_worker.training_dtype("auto", "cpu") == "fp32"
    assert training_worker.training_dtype("bf16", "cpu") == "bf16"
    resources: dict[str, Any] = {}
    for configured, expected in (("auto", "fp32"), ("bf16", "bf16")):
        config = WorkerConfig(models_dir=str(TINY_MODELS_DIR), dtype="bf16", training_dtype=configured)
        sent: list[Any] = []
        ctx = TaskContext("t", WorkerSetup(config=config, device="cpu"), sent.append, resources)
        work = TrainingWork(job_id="j", model_id="tiny-wan", examples=(TrainingExample(png(64, 64), "image/png",
                            False, "a red square"),), width=64, height=64, num_frames=1, rank=4, alpha=4.0,
                            learning_rate=5e-3, steps=2, batch_size=1, seed=3, checkpoint_every=0,
                            output_dir=str(tmp_path / configured))
        outcome = training_worker.run(ctx, work)
        assert outcome.weights_dtype == expected and outcome.steps_completed == 2
        messages = [job_pb2.Progress.FromString(e.progress).message for e in sent]
        assert any(f"training copy in {expected}" in m for m in messages)


# -- the training steps' threads (issue 17 benchmark: one thread on a CPU worker) ---------------------
def test_cpu_training_steps_run_on_the_training_threads_and_the_worker_keeps_its_own(
        pipe: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's training function in this process: each step's event is sent from inside the
    step loop, so the torch thread count seen there is the one the steps ran with. 1 by default on
    a CPU worker, `training_threads` when set; the worker's own count (its generations') is back
    once the task ends, and sample clips (generations) render on it. CUDA workers keep theirs."""
    import torch

    from services.inference.config import InferenceConfig
    from services.inference.training import worker as training_worker
    from services.inference.worker.config import WorkerConfig
    from services.inference.worker.context import TaskContext
    from services.kit.config import ConfigError, load_config
    from tests.fixtures.inference import TINY_MODELS_DIR
    from viarte.type.v1 import job_pb2

    assert training_worker.training_threads(WorkerConfig(), "cpu") == 1
    assert training_worker.training_threads(WorkerConfig(training_threads=3), "cpu") == 3
    assert training_worker.training_threads(WorkerConfig(training_threads=3), "cuda:0") == 0  # unchanged
    assert load_config(InferenceConfig, {"VIARTE_INFERENCE_TRAINING_THREADS": "2"}).worker.training_threads == 2
    with pytest.raises(ConfigError, match="VIARTE_INFERENCE_TRAINING_THREADS"):
        load_config(InferenceConfig, {"VIARTE_INFERENCE_TRAINING_THREADS": "-1"})

    sample_threads: list[int] = []
    render_sample = training_worker.render_sample

    def recording_render_sample(*args: Any) -> str:
        sample_threads.append(torch.get_num_threads())
        return render_sample(*args)

    monkeypatch.setattr(training_worker, "render_sample", recording_render_sample)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the worker's own count (every core of a 2-core machine)
    try:
        resources: dict[str, Any] = {}
        for configured, expected in ((0, 1), (2, 2)):
            # worker_threads 0: every core, which only torch's count tells once the worker set it up.
            config = WorkerConfig(models_dir=str(TINY_MODELS_DIR), dtype="bf16", worker_threads=0,
                                  training_threads=configured)
            seen: list[tuple[job_pb2.Progress, int]] = []

            def send(event: Any, seen: list[tuple[job_pb2.Progress, int]] = seen) -> None:
                seen.append((job_pb2.Progress.FromString(event.progress), torch.get_num_threads()))

            ctx = TaskContext("t", WorkerSetup(config=config, device="cpu"), send, resources)
            work = TrainingWork(job_id="j", model_id="tiny-wan", examples=(TrainingExample(
                png(64, 64), "image/png", False, "a red square"),), width=64, height=64, num_frames=1, rank=4,
                alpha=4.0, learning_rate=5e-3, steps=3, batch_size=1, seed=3, checkpoint_every=0,
                sample_every=2, sample_prompt="a red square", sample_inference_steps=1,
                output_dir=str(tmp_path / str(configured)))
            sample_threads.clear()
            assert training_worker.run(ctx, work).steps_completed == 3
            steps = [threads for progress, threads in seen if "grad_norm" in progress.metrics]
            assert steps == [expected] * 3
            assert sample_threads and set(sample_threads) == {2}  # every sample on the worker's own count
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

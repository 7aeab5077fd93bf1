"""LoRA training jobs and trained LoRAs (``viarte.training.v1``), and the keyword builder of their
parameters. ``client.training.run(training_parameters(...), on_progress=...)`` streams typed
progress: each step's ``JobProgress.progress.metrics`` holds loss, learning_rate and grad_norm."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from viarte.client._base import sync
from viarte.client.assets import Source
from viarte.client.jobs import AsyncJobs, Jobs, _JobSpec
from viarte.training.v1 import training_pb2, training_pb2_grpc

__all__ = ["AsyncTraining", "Training", "training_parameters"]

TRAINING = _JobSpec("training", "inference", training_pb2_grpc.TrainingServiceStub, training_pb2, "Training")


def training_parameters(
    *,
    base_model: str,
    examples: Iterable[tuple[str, str]],
    trigger_word: str = "",
    rank: int = 0,
    alpha: float = 0.0,
    learning_rate: float = 0.0,
    steps: int = 0,
    batch_size: int = 0,
    width: int = 0,
    height: int = 0,
    num_frames: int = 0,
    seed: int | None = None,
    validation_prompt: str = "",
    checkpoint_every_n_steps: int = 0,
    name: str = "",
    sample_every_n_steps: int = 0,
    sample_num_inference_steps: int = 0,
    sample_num_frames: int = 0,
    caption_file_asset_id: str = "",
    gradient_checkpointing: bool | None = None,
) -> training_pb2.TrainingParameters:
    """``TrainingParameters`` from keywords; ``examples`` are ``(asset_id, caption)`` pairs (more can
    come from ``caption_file_asset_id``, a JSON Lines or text asset); ``gradient_checkpointing`` None
    lets the worker choose from its free memory."""
    params = training_pb2.TrainingParameters(
        base_model=base_model, trigger_word=trigger_word, rank=rank, alpha=alpha, learning_rate=learning_rate,
        steps=steps, batch_size=batch_size, width=width, height=height, num_frames=num_frames,
        validation_prompt=validation_prompt, checkpoint_every_n_steps=checkpoint_every_n_steps, name=name,
        sample_every_n_steps=sample_every_n_steps, sample_num_inference_steps=sample_num_inference_steps,
        sample_num_frames=sample_num_frames,
    )
    for asset_id, caption in examples:
        params.dataset.examples.add(asset_id=asset_id, caption=caption)
    params.dataset.caption_file_asset_id = caption_file_asset_id
    if seed is not None:
        params.seed = seed
    if gradient_checkpointing is not None:
        params.gradient_checkpointing = gradient_checkpointing
    return params


class AsyncTraining(AsyncJobs[training_pb2.TrainingJob, training_pb2.TrainingParameters]):
    """LoRA training jobs (``TrainingService``) and the caller's LoRAs (``LoraService``)."""

    async def upload_caption_file(self, source: Source, *, name: str | None = None) -> str:
        """Uploads a caption file (JSON Lines ``{"asset_id", "caption"}`` or ``<asset_id> <caption>``
        text lines) as a text asset; returns its id for ``training_parameters(caption_file_asset_id=...)``.
        The server reads the format from the first non-blank character, so either is sent as text
        (``.jsonl`` as ``application/jsonl``); it checks every line at create (INVALID_DATASET)."""
        assets = self._client.assets
        data, name = assets._normalise(source, name)
        content_type = "application/jsonl" if name.lower().endswith(".jsonl") else "text/plain"
        return str((await assets.upload(data, name=name, content_type=content_type)).id)

    @property
    def _loras(self) -> training_pb2_grpc.LoraServiceStub:
        return self._t.stub(training_pb2_grpc.LoraServiceStub, "inference")

    async def list_loras(self, *, base_model: str = "") -> list[training_pb2.Lora]:
        """Every LoRA of the caller, newest first (all pages)."""
        return [lora async for lora in self._all_loras(base_model)]

    async def _all_loras(self, base_model: str) -> AsyncIterator[training_pb2.Lora]:
        token = ""
        while True:
            req = training_pb2.ListLorasRequest(page_token=token, base_model=base_model)
            resp = await self._t.unary(self._loras.ListLoras, req, retry=True)
            for lora in resp.loras:
                yield lora
            token = resp.next_page_token
            if not token:
                return

    async def get_lora(self, lora_id: str) -> training_pb2.Lora:
        resp = await self._t.unary(self._loras.GetLora, training_pb2.GetLoraRequest(id=lora_id), retry=True)
        return resp.lora  # type: ignore[no-any-return]

    async def delete_lora(self, lora_id: str) -> None:
        await self._t.unary(self._loras.DeleteLora, training_pb2.DeleteLoraRequest(id=lora_id), retry=False)


class Training(Jobs[training_pb2.TrainingJob, training_pb2.TrainingParameters]):
    """The sync :class:`AsyncTraining`."""

    upload_caption_file = sync(AsyncTraining.upload_caption_file)
    list_loras = sync(AsyncTraining.list_loras)
    get_lora = sync(AsyncTraining.get_lora)
    delete_lora = sync(AsyncTraining.delete_lora)

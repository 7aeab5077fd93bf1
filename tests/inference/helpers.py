"""Helpers for inference tests: watching jobs, images, error details."""

from __future__ import annotations

import io
from typing import Any

import grpc
from PIL import Image

from viarte.errors import from_rpc_error
from viarte.inference.v1 import generation_pb2 as G
from viarte.type.v1 import job_pb2

TERMINAL = {job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED}


def png(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    img = Image.new("RGB", (width, height), color)
    for x in range(width // 4, width // 2):  # a little structure so the encoder sees something
        for y in range(height // 4, height // 2):
            img.putpixel((x, y), (20, 180, 60))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def create(stub: Any, user: Any, request_id: str = "", priority: int = 0, **params: Any) -> G.GenerationJob:
    answer = await stub.CreateGenerationJob(
        G.CreateGenerationJobRequest(parameters=G.GenerationParameters(**params), request_id=request_id,
                                     priority=priority),
        metadata=user.metadata, timeout=30,
    )
    return answer.job


async def watch(stub: Any, user: Any, job_id: str, after: int = 0, *, until: Any = None,
                deadline_s: float = 120) -> tuple[G.GenerationJob, list[job_pb2.JobEvent]]:
    """The first message (current job) and the events until a terminal state (or ``until(event)``)."""
    first: G.GenerationJob | None = None
    events: list[job_pb2.JobEvent] = []
    call = stub.WatchGenerationJob(G.WatchGenerationJobRequest(id=job_id, after_sequence=after),
                                   metadata=user.metadata, timeout=deadline_s)
    async for message in call:
        if message.HasField("job"):
            first = message.job
            continue
        events.append(message.event)
        if until is not None and until(message.event):
            call.cancel()
            break
    assert first is not None
    return first, events


def details(err: grpc.aio.AioRpcError) -> tuple[str, list[str]]:
    """(ErrorInfo reason, BadRequest field paths), decoded by the SDK."""
    decoded = from_rpc_error(err)
    return decoded.reason, [v.field for v in decoded.field_violations]

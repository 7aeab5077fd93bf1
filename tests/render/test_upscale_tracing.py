"""The upscale worker process joins the job's trace: the server passes the current traceparent in
the job spec and the worker exports its own spans (a task span and one per stage) over OTLP."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from services.render.upscale.pool import UpscalePool, upscale_video
from tests.fakes.otlp_collector import running_collector, wait_for


@pytest.mark.asyncio(loop_scope="session")
async def test_upscale_worker_spans_join_the_callers_trace(render_service, render_media, tiny_upscaler, tmp_path) -> None:
    root = SpanContext(
        trace_id=int(uuid.uuid4().hex, 16), span_id=int(uuid.uuid4().hex[:16], 16), is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    trace_id, root_span = format(root.trace_id, "032x"), format(root.span_id, "016x")
    with running_collector() as (collector, port):
        config = replace(render_service.config, otlp_endpoint=f"http://127.0.0.1:{port}")
        pool = UpscalePool(0)
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(root)))
        try:
            done = await upscale_video(config, render_media.small.location, render_media.small.content_type,
                                       tmp_path / "up.mp4", pool=pool)
        finally:
            otel_context.detach(token)
            await pool.close()
        assert done.frame == 15

        def stages() -> set[str]:
            return {s.name for s in collector.of_trace(trace_id) if s.service == "render-upscale-worker"}

        wait_for(lambda: {"worker.upscale", "worker.upscaling"} <= stages(), "the upscale worker's spans")
        spans = collector.of_trace(trace_id)
        task = next(s for s in spans if s.name == "worker.upscale")
        assert task.parent_id == root_span
        children = {s.name for s in spans if s.parent_id == task.span_id}
        assert children == {"worker.probe", "worker.model_loading", "worker.upscaling"}

"""Distributed tracing end to end: a small mesh of its own (auth, storage, inference; tracing on)
exports over OTLP/gRPC to a collector in this test process (opentelemetry-proto's TraceService on
a loopback port: the same wire protocol a real collector speaks). A generation job created through
the SDK inside an application span is ONE trace: the caller's span, inference's RPC and job spans,
the worker process's stage spans and storage's StoreAsset; each service's log lines carry its id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from studio_dev.mesh import MeshConfig, start, stop
from tests.fakes.otlp_collector import Collector, running_collector, wait_for
from tests.fixtures.mesh import _CHILD_ENV
from viarte import Client, JobState, generation_parameters

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def collector() -> Iterator[tuple[Collector, int]]:
    with running_collector() as running:
        yield running


@pytest.fixture(scope="module")
def traced_mesh(tmp_path_factory: pytest.TempPathFactory, collector: tuple[Collector, int]) -> Iterator[object]:
    state_dir = tmp_path_factory.mktemp("traced-mesh")
    config = MeshConfig(
        state_dir=str(state_dir), free_ports=True, services=("auth", "storage", "inference"), gateway=False,
        child_env=(*_CHILD_ENV, f"VIARTE_OTLP_ENDPOINT=http://127.0.0.1:{collector[1]}"),
    )
    state = start(config)
    try:
        yield state
    finally:
        stop(state_dir)


def test_generation_job_is_one_trace_across_services_and_the_worker(traced_mesh, collector) -> None:
    spans, _ = collector
    state = traced_mesh
    # The application's own span: the SDK must send it as the parent of everything that follows.
    root = SpanContext(
        trace_id=int(uuid.uuid4().hex, 16), span_id=int(uuid.uuid4().hex[:16], 16), is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    trace_id, root_span = format(root.trace_id, "032x"), format(root.span_id, "016x")
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(root)))
    try:
        with Client(dict(state.endpoints)) as client:
            client.auth.register(f"trace-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery staple 42")
            job = client.generation.run(generation_parameters(
                model="tiny-modelscope", prompt="a red fox", width=64, height=64, num_frames=4, seed=3,
            ))
    finally:
        otel_context.detach(token)
    assert job.status.state == JobState.SUCCEEDED

    def complete() -> bool:
        got = spans.of_trace(trace_id)
        names = {(s.service, s.name) for s in got}
        return {
            ("inference", "viarte.inference.v1.GenerationService/CreateGenerationJob"),
            ("inference", "job.run"),
            ("inference-worker", "worker.generation"),
            ("storage", "viarte.storage.v1.StorageInternalService/StoreAsset"),
        } <= names
    wait_for(complete, "the job's spans from inference, its worker and storage")

    got = spans.of_trace(trace_id)
    by_id = {s.span_id: s for s in got}
    create = next(s for s in got if s.name.endswith("/CreateGenerationJob"))
    assert create.parent_id == root_span  # the SDK's traceparent is the RPC's parent
    run = next(s for s in got if s.name == "job.run")
    assert run.parent_id == create.span_id and run.attributes["viarte.job_id"] == job.id
    queued = next(s for s in got if s.name == "job.queued")
    assert queued.parent_id == create.span_id
    task = next(s for s in got if s.service == "inference-worker" and s.name == "worker.generation")
    assert task.parent_id == run.span_id  # the worker process joined the job's trace
    stages = {s.name for s in got if s.service == "inference-worker" and s.parent_id == task.span_id}
    assert {"worker.model_loading", "worker.denoising", "worker.decoding", "worker.encoding"} <= stages
    stored = next(s for s in got if s.service == "storage" and s.name.endswith("/StoreAsset"))
    client_span = by_id[stored.parent_id]  # storage's span is a child of inference's CLIENT span...
    assert client_span.service == "inference" and client_span.name.endswith("/StoreAsset")
    ancestor = client_span
    while ancestor.parent_id in by_id and ancestor.span_id != run.span_id:
        ancestor = by_id[ancestor.parent_id]
    assert ancestor.span_id == run.span_id  # ...made while the job ran

    for name in ("auth", "storage", "inference"):
        log = Path(next(p.log for p in state.processes if p.name == name)).read_text(errors="replace")
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert any(line.get("trace_id") == trace_id for line in lines), f"no {name} log line carries the trace id"

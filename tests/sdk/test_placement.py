"""The SDK's view of where a job runs (issue 15): ``Placement.of(job)`` and ``JobProgress.placement``
read ``JobStatus.placement``; unset while the job has not started on a device."""

from __future__ import annotations

from viarte import JobProgress, Placement
from viarte.inference.v1 import generation_pb2
from viarte.type.v1 import job_pb2

NODE = "3f2a9c1be04d5c7e8a9b0c1d2e3f405162738495a6b7c8d9e0f1a2b3"


def _job(placement: job_pb2.Placement | None = None) -> generation_pb2.GenerationJob:
    status = job_pb2.JobStatus(state=job_pb2.JOB_STATE_RUNNING)
    if placement is not None:
        status.placement.CopyFrom(placement)
    return generation_pb2.GenerationJob(id="j1", status=status)


def test_placement_of_a_job_and_of_its_status() -> None:
    job = _job(job_pb2.Placement(executor="ray", node=NODE, device="gpu:1"))
    assert Placement.of(job) == Placement("ray", NODE, "gpu:1") == Placement.of(job.status)
    assert str(Placement.of(job)) == f"ray on {NODE} (gpu:1)"  # as `viarte jobs get` prints it


def test_no_placement_before_the_job_starts() -> None:
    assert Placement.of(_job()) is None
    assert Placement.of(_job(job_pb2.Placement())) is None  # an empty message is not a placement


def test_progress_updates_that_carry_the_job_carry_its_placement() -> None:
    job = _job(job_pb2.Placement(executor="local", node="gpu-host-1", device="cuda:0"))
    snapshot = JobProgress.from_job("generation", job)
    assert snapshot.placement == Placement("local", "gpu-host-1", "cuda:0")
    event = JobProgress.from_event("generation", "j1", job_pb2.JobEvent(sequence=3, state=job_pb2.JOB_STATE_RUNNING))
    assert event.placement is None and event.with_job(job).placement == snapshot.placement

"""The SDK's view of what a job costs (issue 16): ``Cost.of(job)`` and ``JobProgress.cost`` read
``JobStatus.cost`` (the estimate at create, the charge once the account service recorded the end)."""

from __future__ import annotations

from viarte import Cost, JobProgress
from viarte.render.v1 import render_pb2
from viarte.type.v1 import job_pb2


def _job(cost: job_pb2.JobCost) -> render_pb2.RenderJob:
    return render_pb2.RenderJob(id="j1", status=job_pb2.JobStatus(state=job_pb2.JOB_STATE_SUCCEEDED, cost=cost))


def test_estimate_then_charge() -> None:
    pending = _job(job_pb2.JobCost(estimated_credits=12))
    assert Cost.of(pending) == Cost(estimated=12, credits=0, final=False) == Cost.of(pending.status)
    assert str(Cost.of(pending)) == "~12 credits (estimated; charged when the job ends)"
    charged = _job(job_pb2.JobCost(estimated_credits=12, credits=7, final=True))
    assert str(Cost.of(charged)) == "7 credits (estimated 12)"  # as `viarte jobs get` prints it


def test_progress_updates_that_carry_the_job_carry_its_cost() -> None:
    job = _job(job_pb2.JobCost(estimated_credits=3, credits=0, final=True))  # a refunded failure
    assert JobProgress.from_job("render", job).cost == Cost(3, 0, True)
    assert JobProgress.from_event("render", "j1", job_pb2.JobEvent(sequence=2)).cost is None

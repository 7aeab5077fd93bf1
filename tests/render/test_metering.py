"""What render reports to account for each ended job (services/render/metering.py)."""

from __future__ import annotations

import pytest

from services.kit.jobs.record import JobRecord
from services.render.handlers import RENDER
from services.render.metering import describe
from viarte.render.v1 import render_pb2
from viarte.render.v1 import timeline_pb2 as tl
from viarte.type.v1 import job_pb2


def _ended(state: int, parameters: render_pb2.RenderParameters, progress: job_pb2.Progress) -> JobRecord:
    return JobRecord(
        id="j1", owner="u1", kind=RENDER, request_id="", parameters=parameters.SerializeToString(), state=state,
        priority=0, attempts=1, cancel_requested=state == job_pb2.JOB_STATE_CANCELLED, create_us=1, start_us=2,
        end_us=3, result=None, error=None, progress=progress, last_sequence=4,
    )


@pytest.mark.parametrize(("output_fps", "seconds"), [(0.0, 1.2), (20.0, 0.6)])
def test_a_cancelled_render_is_measured_in_output_seconds(output_fps: float, seconds: float) -> None:
    # The canvas holds the timeline's fps (a Timeline has none of its own): describing a cancelled
    # render used to raise, so its outcome was never recorded and was retried (with a logged
    # traceback) every few seconds for ever.
    canvas = tl.Canvas(width=64, height=36, fps=10, duration_seconds=2)
    params = render_pb2.RenderParameters(timeline=tl.Timeline(canvas=canvas), output_fps=output_fps)
    stopped = job_pb2.Progress(frame=12, total_frames=20, message="cancelled")
    outcome = describe(_ended(job_pb2.JOB_STATE_CANCELLED, params, stopped))
    assert outcome.quantities.frames == 12
    assert outcome.quantities.video_seconds == pytest.approx(seconds)
    # Cancelled before the first frame: nothing done, nothing charged.
    assert describe(_ended(job_pb2.JOB_STATE_CANCELLED, params, job_pb2.Progress())).quantities.video_seconds == 0

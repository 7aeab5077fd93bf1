"""The README's main command, ``viarte demo``, as a subprocess; its MP4 is checked with ffprobe.

It runs on the session mesh (``--state-dir``): the demo reuses a ready mesh and leaves it running,
exactly as it does for a user who ran ``viarte up`` first.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio_dev.demo import OUTPUT_NAME, ffprobe_summary
from tests.fixtures.mesh import RunningMesh

pytestmark = pytest.mark.e2e


def test_demo_produces_the_upscaled_mp4(mesh: RunningMesh, tmp_path: Path) -> None:
    mesh.require("auth", "storage", "inference", "render")
    result = subprocess.run(
        [sys.executable, "-m", "viarte", "--state-dir", str(mesh.state_dir), "--config", str(tmp_path / "cli.json"),
         "--json", "demo", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout)
    mp4 = tmp_path / OUTPUT_NAME
    assert summary["output"] == str(mp4) and summary["skipped"] == []
    assert set(summary["jobs"]) == {"i2v", "t2v", "render", "upscale"}
    # The steps were printed with their progress (on stderr under --json).
    for text in ("Image-to-video with face swap", "Text-to-video", "denoising", "face swap", "rendering", "upscaling"):
        assert text in result.stderr
    assert summary["editor_url"].startswith("http://127.0.0.1:")

    probe = ffprobe_summary(mp4)
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (512, 512)  # 256 canvas, x2
    assert audio["codec_name"] == "aac"
    # i2v (13 frames) and t2v (16 frames) at 8 fps, overlapping by the 0.5 s crossfade.
    assert 2.5 < float(probe["format"]["duration"]) < 4.0
    assert summary["ffprobe"]["streams"] == probe["streams"]
    _check_metering(mesh, summary["jobs"])
    # The demo did not stop a mesh it did not start.
    assert mesh.services >= {"auth", "storage", "inference", "render"}
    from studio_dev.mesh import status

    state, _rows = status(mesh.state_dir)
    assert state is not None and state.state == "ready"


def _check_metering(mesh: RunningMesh, jobs: dict[str, str]) -> None:
    """Issue 16: every job the demo ran (generation with face swap, generation, render, upscale)
    has one usage record in account, and its job row the same credits as its final cost, above
    zero, with an estimate set at create. Read from the dev mesh's SQLite files (the demo user's
    password never leaves the demo, so its API calls are not open to the test)."""
    mesh.require("account")
    data = mesh.state_dir / "data"

    def rows(service: str, query: str) -> dict[str, tuple]:  # type: ignore[type-arg]
        with sqlite3.connect(data / service / f"{service}.db") as conn:
            marks = ",".join("?" * len(jobs))
            return {r[0]: r[1:] for r in conn.execute(query.format(marks), list(jobs.values()))}

    deadline = time.monotonic() + 60  # outcomes are recorded in the background, right after each end
    while True:
        records = rows("account", "SELECT job_id, kind, credits FROM account_usage_record WHERE job_id IN ({})")
        if len(records) == len(jobs) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    kinds = {name: records[job_id][0] for name, job_id in jobs.items()}
    assert kinds == {"i2v": 1, "t2v": 1, "render": 4, "upscale": 3}  # account_pb2.JobKind numbers
    job_rows = {**rows("inference", "SELECT id, estimated_credits, credits FROM job WHERE id IN ({})"),
                **rows("render", "SELECT id, estimated_credits, credits FROM job WHERE id IN ({})")}
    for job_id, (_kind, credits) in records.items():
        estimated, charged = job_rows[job_id]
        assert credits > 0 and charged == credits and estimated > 0, (job_id, credits, job_rows[job_id])
